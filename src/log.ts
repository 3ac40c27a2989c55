import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * One root logger per process; modules take `log.child({ module })`.
 * Secrets never reach a log line: the config's password fields are redacted.
 */
export function createLogger(opts: { level?: string; destination?: number } = {}): Logger {
  return pino(
    {
      level: opts.level ?? process.env.HOMELAB_CMD_LOG_LEVEL ?? 'info',
      base: { pid: process.pid },
      redact: { paths: ['password', '*.password', 'mqtt.password', 'key', '*.key'], censor: '[redacted]' },
    },
    pino.destination({ dest: opts.destination ?? 2, sync: true }),
  );
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
