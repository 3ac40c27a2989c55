/** What the agent logs for each way a connection attempt fails (src/agent/connect-cause.ts). */
import { describe, expect, it } from 'vitest';
import { connectCause } from '../../src/agent/connect-cause.js';

describe('connectCause', () => {
  it.each([
    [0x86, 'Connection refused: Bad User Name or Password', 'bad_login', /bad username or password/],
    [4, 'Connection refused: Bad username or password', 'bad_login', /bad username or password/],
    [0x8c, 'Connection refused: Bad authentication method', 'bad_login', /bad username or password/],
    [0x87, 'Connection refused: Not authorized', 'not_authorized', /not authorized/],
    [5, 'Connection refused: Not authorized', 'not_authorized', /not authorized/],
    ['ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1883', 'unreachable', /not reachable/],
    ['EHOSTUNREACH', 'connect EHOSTUNREACH 10.0.0.9:1883', 'unreachable', /not reachable/],
    ['ENOTFOUND', 'getaddrinfo ENOTFOUND brokr.lan', 'dns', /not reachable/],
    ['EAI_AGAIN', 'getaddrinfo EAI_AGAIN broker.lan', 'dns', /not reachable/],
    ['ETIMEDOUT', 'connect ETIMEDOUT 10.0.0.9:1883', 'timeout', /not reachable/],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain', 'tls', /TLS handshake/],
    ['ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames", 'tls', /TLS/],
    ['CERT_HAS_EXPIRED', 'certificate has expired', 'tls', /TLS/],
    ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'unable to get local issuer certificate', 'tls', /TLS/],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'wrong version number', 'tls', /TLS/],
    [undefined, 'connack timeout', 'timeout', /not reachable/],
    [undefined, 'the broker closed the connection without a CONNACK', 'other', /not reachable/],
  ])('code %s (%s) is %s', (code, message, kind, msg) => {
    const c = connectCause(code, message);
    expect(c.kind).toBe(kind);
    expect(c.msg).toMatch(msg);
    expect(c.check).toMatch(/mqtt\.|broker/);
  });

  it('a CONNACK that did not come in time says the next attempt waits longer', () => {
    expect(connectCause(undefined, 'connack timeout').check).toMatch(/twice as long.*§ Reconnects/);
  });

  it('says what to check in the config for a refused login', () => {
    expect(connectCause(0x86, '').check).toMatch(
      /mqtt\.username and mqtt\.password \(or mqtt\.password_file\)/,
    );
    expect(connectCause(5, '').check).toMatch(/Mosquitto answers a wrong password with "not authorized" too/);
    expect(connectCause('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate').check).toMatch(
      /mqtt\.ca_file/,
    );
  });
});
