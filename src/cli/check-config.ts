import { loadConfig } from '../config/load.js';
import { out, parse, type Verb } from './args.js';
import { UsageError } from '../errors.js';

export const checkConfigVerb: Verb = {
  name: 'check-config',
  summary: 'validate a config file; print every problem with its key path',
  usage: `Usage: homelab-cmd check-config --config FILE

Validates FILE against the schema (docs/configuration.md) and the cross-checks:
placeholders, patterns, buttons, secrets files. Exit 0 when valid; otherwise
prints every problem as "path.to.key: what is wrong — how to fix" and exits 1.`,
  async run(argv) {
    const { values } = parse(this, argv, { config: { type: 'string', short: 'c' } });
    if (values.help) return out(this.usage), 0;
    if (!values.config) throw new UsageError(`--config is required\n\n${this.usage}`);
    const config = loadConfig(values.config);
    const actions = Object.keys(config.actions);
    out(`${values.config}: OK — host ${config.host}, ${actions.length} action(s)${actions.length ? `: ${actions.join(', ')}` : ''}; execution ${config.execution.enabled ? 'enabled' : 'disabled (set execution.enabled: true to run actions)'}`);
    return 0;
  },
};
