/**
 * Why a connection attempt to the broker failed, in the broker's own terms, and what to check
 * (docs/operations.md § Troubleshooting). The session logs a cause once, however many retries meet it
 * again, and says when it is over: a wrong password must not read as "broker not reachable", nor fill
 * the journal with the same two lines every few seconds.
 */
import { loginRefusal } from '../core/connack.js';

export type CauseKind = 'bad_login' | 'not_authorized' | 'unreachable' | 'dns' | 'timeout' | 'tls' | 'other';

export interface Cause {
  kind: CauseKind;
  /** The log line's msg: stable per kind (operations.md lists them). */
  msg: string;
  /** What to check, in the config's terms. */
  check: string;
}

const UNREACHABLE = new Set<unknown>(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE']);
const DNS = new Set<unknown>(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_FAIL']);
const TIMEOUT = new Set<unknown>(['ETIMEDOUT', 'ECONNABORTED']);

/** Node's TLS error codes (its own ERR_TLS_* / ERR_SSL_*, and OpenSSL's verification codes). */
function isTls(code: unknown, message: string): boolean {
  if (
    typeof code === 'string' &&
    /^(ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|UNABLE_TO_|HOSTNAME_)/.test(code)
  )
    return true;
  return /\b(certificate|SSL|TLS|handshake)\b/i.test(message);
}

/** MQTT.js's error message when no CONNACK came within connectTimeout (client-options.ts nextConnackWait). */
export const CONNACK_TIMEOUT = 'connack timeout';

/** The cause of an `error` a connection attempt met (MQTT.js puts a CONNACK's reason code in `code`). */
export function connectCause(code: unknown, message: string): Cause {
  const refused = loginRefusal(code);
  if (refused === 'bad_login')
    return {
      kind: 'bad_login',
      msg: 'the broker refused the login: bad username or password; retrying with backoff',
      check:
        "check mqtt.username and mqtt.password (or mqtt.password_file) against the broker's users (Mosquitto's password_file, or broker.users of the embedded broker)",
    };
  if (refused === 'not_authorized')
    return {
      kind: 'not_authorized',
      msg: 'the broker refused the login: not authorized; retrying with backoff',
      check:
        'check mqtt.username and the password (Mosquitto answers a wrong password with "not authorized" too), that the broker knows this user and lets it connect (allow_anonymous false needs a login; the embedded broker without broker.users takes loopback clients only)',
    };
  if (typeof code === 'string' && DNS.has(code))
    return {
      kind: 'dns',
      msg: 'broker not reachable; retrying',
      check: "the host name in mqtt.url does not resolve: check its spelling and this machine's DNS",
    };
  if (typeof code === 'string' && TIMEOUT.has(code))
    return {
      kind: 'timeout',
      msg: 'broker not reachable; retrying',
      check: 'no answer from the broker: check mqtt.url (host and port) and any firewall between',
    };
  if (message === CONNACK_TIMEOUT)
    return {
      kind: 'timeout',
      msg: 'broker not reachable; retrying',
      check:
        'the broker took the connection but did not answer the CONNECT in time: it may be overloaded or starting; each such attempt waits twice as long as the last (docs/brokers.md § Reconnects)',
    };
  if (isTls(code, message))
    return {
      kind: 'tls',
      msg: 'the TLS handshake with the broker failed; retrying with backoff',
      check:
        "check mqtt.ca_file (the CA that signed the broker's certificate), that mqtt.url names a host the certificate is for, and its dates; mqtt.cert_file/key_file if the broker asks for a client certificate",
    };
  if (typeof code === 'string' && UNREACHABLE.has(code))
    return {
      kind: 'unreachable',
      msg: 'broker not reachable; retrying',
      check: 'is the broker running, and are the host and port of mqtt.url right?',
    };
  return {
    kind: 'other',
    msg: 'broker not reachable; retrying',
    check: "check mqtt.url and the broker's log",
  };
}
