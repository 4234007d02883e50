export { ConfigError, envDefaultsOf, isPlaceholderSecret, parseEnv } from './config-error.ts';
export { exitOnSignalsWhileStarting, loadConfigOrExit, stopOnSignals } from './process-lifecycle.ts';
export { logErrorsThrottled, publishWithoutRejection } from './redis-errors.ts';
export { readPemFile, withPemFiles } from './pem-file.ts';
export { throttledWarning } from './throttled-warning.ts';
export { withinDeadline } from './deadline.ts';
