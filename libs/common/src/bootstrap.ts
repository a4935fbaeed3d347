import { ConfigError, type AppConfig, loadConfig } from '@aperture/config/config.js';

/** Loads the configuration or stops the process with the list of every problem. */
export function loadConfigOrExit(): AppConfig {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\nSee .env.example for every variable.\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
}

/**
 * On SIGTERM/SIGINT: close the app (in-flight requests and running jobs finish, connections close), then exit 0.
 * A shutdown that takes longer than timeoutMs exits 1 (a stuck dependency must not keep a pod terminating forever).
 */
export function closeOnSignals(app: { close(): Promise<void> }, timeoutMs: number): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing) return;
    closing = true;
    setTimeout(() => {
      process.stderr.write(`Shutdown after ${signal} took longer than ${timeoutMs} ms; exiting.\n`);
      process.exit(1);
    }, timeoutMs + 5000).unref();
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`Error during shutdown: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}
