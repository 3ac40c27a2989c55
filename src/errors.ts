/**
 * Errors that reach a person carry a stable `code` (for exit codes and tests)
 * and a message that says what went wrong and how to fix it.
 */
export class HomelabError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'HomelabError';
  }
}

/** Bad CLI usage, bad config: the user must change what they typed. */
export class UsageError extends HomelabError {
  constructor(message: string) {
    super('usage', message);
    this.name = 'UsageError';
  }
}

/** One problem per key path, all collected before reporting (check-config prints every one). */
export interface ConfigIssue {
  path: string;
  message: string;
}

export class ConfigError extends HomelabError {
  constructor(
    readonly file: string,
    readonly issues: ConfigIssue[],
  ) {
    super(
      'config',
      `${file}: ${issues.length} problem(s)\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`,
    );
    this.name = 'ConfigError';
  }
}

/** Could not reach, or was refused by, a broker or a port. */
export class ConnectionError extends HomelabError {
  constructor(message: string) {
    super('connection', message);
    this.name = 'ConnectionError';
  }
}

/** The port a broker should listen on is taken (often by a Mosquitto already running). */
export class PortInUseError extends ConnectionError {
  constructor(
    message: string,
    readonly host: string,
    readonly port: number,
  ) {
    super(message);
    this.name = 'PortInUseError';
  }
}
