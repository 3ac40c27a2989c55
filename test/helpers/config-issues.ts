/** The problems a config is refused with: one helper for every config table test. */
import { expect } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError, type ConfigIssue } from '../../src/errors.js';

export function configIssues(yaml: string, source: string): ConfigIssue[] {
  try {
    parseConfig(yaml, source, {});
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('expected the config to be refused with a ConfigError');
}
