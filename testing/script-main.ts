// Test helper programs that tests start as child processes (node dist-test/testing/<file>.js …): run `main` when
// the module is the process's entry point, and stop it cleanly on SIGTERM/SIGINT.
import { pathToFileURL } from 'node:url';

export function runIfEntryPoint(moduleUrl: string, main: (args: string[]) => () => void): void {
  if (!process.argv[1] || moduleUrl !== pathToFileURL(process.argv[1]).href) return;
  const stop = main(process.argv.slice(2));
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      stop();
      process.exit(0);
    });
  }
}
