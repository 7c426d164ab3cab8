// Child processes of the local control plane: started in their own process group, logged to files,
// stopped with SIGTERM then SIGKILL, and swept up if a previous run died without stopping them.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';

const live = new Set<ChildProcess>();
process.once('exit', () => {
  // Last resort when the test runner exits without stopping us: never leave a server behind.
  for (const child of live) if (child.pid) killGroup(child.pid, 'SIGKILL');
});

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

export class ManagedProcess {
  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
    readonly logFile: string,
    readonly exited: Promise<number | null>,
  ) {}

  /** `ipc`: a Node.js message channel to the child (send(), onMessage()), for helper scripts that take commands. */
  static start(name: string, command: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = process.env, ipc = false): ManagedProcess {
    const log = createWriteStream(logFile, { flags: 'a' });
    const child = spawn(command, args, { stdio: ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'], detached: true, env });
    // One log for both streams, ended once both are: with pipe()'s default, the first stream to end (stdout, at exit)
    // ended the log and the last lines on stderr, such as why a server failed to start, were lost.
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    child.once('close', () => log.end());
    live.add(child);
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code) => {
        live.delete(child);
        resolve(code);
      });
      child.once('error', () => {
        live.delete(child);
        resolve(-1);
      });
    });
    return new ManagedProcess(name, child, logFile, exited);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Sends a message on the channel of a process started with `ipc`. */
  send(message: unknown): void {
    if (!this.child.send) throw new Error(`${this.name} was started without a message channel`);
    this.child.send(message as object);
  }

  onMessage(listener: (message: unknown) => void): void {
    this.child.on('message', listener);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && live.has(this.child);
  }

  /** For error messages: running, or how it ended. */
  get state(): string {
    if (this.running) return 'running';
    return this.child.signalCode ? `killed by ${this.child.signalCode}` : `exited with code ${this.child.exitCode}`;
  }

  /** The last lines of its log, for error messages. */
  logTail(lines = 30): string {
    if (!existsSync(this.logFile)) return '';
    return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
  }

  async stop(graceMs = 5000): Promise<void> {
    if (!this.running || !this.child.pid) return;
    killGroup(this.child.pid, 'SIGTERM');
    const timer = setTimeout(() => this.child.pid && killGroup(this.child.pid, 'SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  async kill(): Promise<void> {
    if (!this.running || !this.child.pid) return;
    killGroup(this.child.pid, 'SIGKILL');
    await this.exited;
  }
}

/**
 * Ports are picked below the kernel's ephemeral range (32768-60999 by default): a port taken from that range by
 * binding port 0 can be handed to some process's outgoing connection before our server binds it, which made a
 * kube-apiserver exit at start-up on a busy test machine. Random picks from 20000-29999, never the same one twice
 * in this process, checked free on 127.0.0.1 (a bind there also fails when 0.0.0.0 holds the port).
 */
const PORT_RANGE = { first: 20_000, count: 10_000 };
const handedOut = new Set<number>();

/** A TCP port on 127.0.0.1 that was free a moment ago and that this process has not handed out before. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = PORT_RANGE.first + Math.floor(Math.random() * PORT_RANGE.count);
    if (handedOut.has(port) || !(await bindable(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port in ${PORT_RANGE.first}-${PORT_RANGE.first + PORT_RANGE.count - 1}`);
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Whether a process that exited at start-up did so because its port was taken (the caller may retry on others). */
export function exitedOnTakenPort(proc: ManagedProcess): boolean {
  return !proc.running && /address already in use/i.test(proc.logTail(60));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Removes the state directories under `root` whose owner process is gone, killing any server still
 * running from them (recognised by the directory path on its command line, so a reused pid is spared).
 */
/** A directory without owner.pid this recent is one being set up, not a leftover. */
const STARTING_GRACE_MS = 60_000;

function youngerThan(path: string, ms: number): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs < ms;
  } catch {
    return false;
  }
}

export function sweepStale(root: string): void {
  if (!existsSync(root)) return;
  for (const entry of readdirSync(root)) {
    const dir = `${root}/${entry}`;
    const ownerFile = `${dir}/owner.pid`;
    const owner = existsSync(ownerFile) ? Number(readFileSync(ownerFile, 'utf8')) : NaN;
    if (Number.isFinite(owner) && alive(owner)) continue;
    // Between mkdtemp and writing owner.pid a directory has no owner yet: another control plane is starting there.
    if (!existsSync(ownerFile) && youngerThan(dir, STARTING_GRACE_MS)) continue;
    for (const pidDir of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        if (readFileSync(`/proc/${pidDir}/cmdline`, 'utf8').includes(dir)) process.kill(Number(pidDir), 'SIGKILL');
      } catch {
        // Exited while we looked.
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
