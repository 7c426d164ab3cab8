// Structured JSON logs, one object per line on stderr: {ts, level, logger, msg, ...fields}.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(name: string, fields?: LogFields): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  write?: (line: string) => void;
}

export function createLogger(name = 'switchboard', options: LoggerOptions = {}, base: LogFields = {}): Logger {
  const min = order[options.level ?? ((process.env.SWITCHBOARD_LOG_LEVEL as LogLevel | undefined) ?? 'info')] ?? order.info;
  const write = options.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (order[level] < min) return;
    write(JSON.stringify({ ts: new Date().toISOString(), level, logger: name, msg, ...base, ...fields }, errorReplacer));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (childName, fields) => createLogger(`${name}.${childName}`, options, { ...base, ...fields }),
  };
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { message: value.message, name: value.name };
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/** A logger that drops everything, for tests and library use. */
export const silentLogger: Logger = createLogger('silent', { level: 'error', write: () => {} });
