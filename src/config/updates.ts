/**
 * `updates:` — the OS package update entity and the reboot-required sensor
 * (docs/updates.md, docs/configuration.md § updates). Off unless enabled.
 * Part of the config schema; schema.ts mounts it and checks install_action
 * names a configured action.
 */
import { z } from 'zod';
import { ACTION_NAME_RE } from '../core/names.js';
import { positiveDuration } from './fields.js';

const MIN_CHECK_MS = 60_000;

export const updatesSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    // How often the pending upgrades and the reboot flag are read; also at start and after an install.
    check: positiveDuration
      .refine((ms) => ms >= MIN_CHECK_MS, {
        error: 'must be at least 1m — apt reads its whole package cache at each check; 6h is plenty',
      })
      .default(6 * 3_600_000),
    manager: z
      .enum(['apt'], { error: 'manager must be apt (dnf and pacman are not supported yet)' })
      .default('apt'),
    // What the simulation asks apt: match the install action (apt-get upgrade leaves kept-back packages alone).
    mode: z.enum(['upgrade', 'dist-upgrade']).default('upgrade'),
    timeout: positiveDuration.default(120_000),
    // The action HA's Install runs, through the normal pipeline (signatures, sudo, stagger, journal).
    install_action: z
      .string()
      .regex(ACTION_NAME_RE, 'must be the name of an action under actions:, e.g. apply_updates')
      .optional(),
    reboot_required_file: z
      .string()
      .startsWith('/', 'must be an absolute path such as /var/run/reboot-required')
      .default('/var/run/reboot-required'),
  })
  .prefault({});

export type UpdatesConfig = z.output<typeof updatesSchema>;
