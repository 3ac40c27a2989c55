/**
 * Promises that wait on the session's next connection: callers that need the session set up (subscribed,
 * every connect listener run), and publishes MQTT.js failed at a connection drop, to be sent again at
 * the next connect (session.ts § publish).
 */
interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

export class ConnectWaiters {
  private setUp: Waiter[] = [];
  private resend: Waiter[] = [];

  /** Resolves when the next connection is set up; rejects after `timeoutMs` with `what` in the message. */
  untilSetUp(timeoutMs: number, what: () => string): Promise<void> {
    return new Promise((resolve, reject) => {
      // Removed once it fired or timed out: a caller that waits again must not pile waiters up.
      const w: Waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject,
      };
      const timer = setTimeout(() => {
        this.setUp = this.setUp.filter((x) => x !== w);
        reject(new Error(`no connection to ${what()} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.setUp.push(w);
    });
  }

  /**
   * Resolves once the next connection has subscribed (rejects if the session stops first): sent earlier,
   * a stale `online` could reach a broker that holds no subscription of ours yet (outgoing-store.ts).
   */
  untilReconnect(): Promise<void> {
    return new Promise((resolve, reject) => this.resend.push({ resolve, reject }));
  }

  subscribed(): void {
    for (const w of this.resend.splice(0)) w.resolve();
  }

  wasSetUp(): void {
    for (const w of this.setUp.splice(0)) w.resolve();
  }

  stopped(): void {
    for (const w of this.resend.splice(0))
      w.reject(new Error('the agent stopped before it could send this again'));
  }
}
