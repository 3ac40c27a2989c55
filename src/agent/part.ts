/**
 * The lifecycle every part of the agent shares. The agent calls them in its own order: `start` before
 * connecting (read state_dir, start timers; constructors do no I/O), `onConnect` on every connection,
 * each awaited in turn (the first part's runs before any await: requests may already be arriving),
 * `onDisconnect` when it closes, `stop` on the way out — a stop that fails makes the process exit 1.
 */
export interface ConnectInfo {
  /** false on the first connection of this run; true after a lost one. */
  reconnect: boolean;
}

export interface AgentPart {
  /** For the log. */
  readonly name: string;
  start(): void;
  onConnect(info: ConnectInfo): void | Promise<void>;
  onDisconnect?(): void;
  stop(): void | Promise<void>;
}
