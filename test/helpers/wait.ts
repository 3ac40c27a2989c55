/**
 * Every deadline here is multiplied by this: a deadline only ends a wait that has already gone wrong, so
 * it is set for a busy machine (two test runs on two cores, each step many times slower than when quiet),
 * never as a speed limit. HOMELAB_TEST_SLACK=1 gives the written figures (to see a hang sooner).
 */
export const SLACK = Math.max(1, Number(process.env.HOMELAB_TEST_SLACK ?? 3) || 3);

/** A written deadline for a busy machine: a test's own limit, a child's kill timer (see SLACK). */
export const slack = (ms: number): number => ms * SLACK;

/** Wait on an event with a deadline — never a bare sleep. */
export function withDeadline<T>(p: Promise<T>, written: number, what: string): Promise<T> {
  const ms = written * SLACK;
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** Re-check a condition each time `emitter` fires `event` (or every 50 ms for file/process state), until true or the deadline. */
export async function until(
  check: () => boolean | Promise<boolean>,
  written: number,
  what: string,
): Promise<void> {
  const ms = written * SLACK;
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
