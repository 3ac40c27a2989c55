/**
 * What a broker's refusal of a CONNECT means, for the agent's connection log (agent/connect-cause.ts)
 * and the CLI's one-line error (cli/client.ts): one table, so both read a refused login alike.
 */

// CONNACK reason codes: MQTT 5 (0x86 bad user name or password, 0x8c bad authentication method,
// 0x87 not authorized) and MQTT 3.1.1 return codes (4 bad user name or password, 5 not authorized).
// MQTT.js puts the code of a refused CONNACK in the error's `code`.
const BAD_LOGIN = new Set<unknown>([0x86, 0x8c, 4]);
const NOT_AUTHORIZED = new Set<unknown>([0x87, 5]);

/** `bad_login` or `not_authorized` for a CONNACK code that refuses the login; undefined for anything else. */
export function loginRefusal(code: unknown): 'bad_login' | 'not_authorized' | undefined {
  if (BAD_LOGIN.has(code)) return 'bad_login';
  if (NOT_AUTHORIZED.has(code)) return 'not_authorized';
  return undefined;
}
