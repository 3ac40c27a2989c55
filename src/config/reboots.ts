/**
 * `actions.<name>.reboot` — the action reboots the host (docs/configuration.md § Reboots,
 * docs/updates.md § Reboots). `reboot: true` takes every default. Mounted by actions.ts.
 */
import { z } from 'zod';
import { positiveDuration } from './fields.js';

/** Linux's id of the current boot: a new random UUID at every boot (proc(5)). */
export const DEFAULT_BOOT_ID_FILE = '/proc/sys/kernel/random/boot_id';

export const rebootSchema = z.preprocess(
  (v) => (v === true ? {} : v === false ? undefined : v),
  z
    .strictObject({
      // The command may exit 0 long before systemd stops the agent: this long the agent waits to go down.
      down_within: positiveDuration.default(5 * 60_000),
      // After the agent is back: its probes (or the action's health check) must pass within this.
      healthy_within: positiveDuration.default(5 * 60_000),
      boot_id_file: z
        .string()
        .startsWith('/', `must be an absolute path such as ${DEFAULT_BOOT_ID_FILE}`)
        .default(DEFAULT_BOOT_ID_FILE),
    })
    .optional(),
);

export type RebootConfig = NonNullable<z.output<typeof rebootSchema>>;
