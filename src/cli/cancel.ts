/**
 * `homelab-cmd cancel H ID`: ask host H to stop request ID (docs/mqtt-api.md § Cancel), wait for the
 * answer, print ID's final result. Exit 0 when ID ended `cancelled`, 1 when there was nothing to cancel
 * or it ended otherwise, 2 on usage or connection errors, 3 when the cancel is not answered within
 * --wait (a deployment still rolling back). The request goes out through send's own path (send.ts).
 */
import { randomUUID } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { CANCEL_OLDEST } from '../core/cancel.js';
import { redactUrl } from '../core/failover.js';
import { readFormat, resultReader } from '../core/formats.js';
import { HOST_ID_RE, REQUEST_ID_RE } from '../core/names.js';
import type { Result } from '../core/result.js';
import { sign } from '../core/signing.js';
import { hostTopics } from '../core/topics.js';
import { ConnectionError, UsageError } from '../errors.js';
import { err, out, parse, secondsOption, type Verb } from './args.js';
import { connectFirst, refusal } from './client.js';
import { offlineLine, readPresence, unknownHostLine } from './send-preflight.js';
import { signedFields, signingKey } from './request-spec.js';
import { targetFrom, targetOptions } from './send.js';
import { NotFinished, ownFinalResult, sendAndWait } from './send-wait.js';

/** How long the target's own final may trail the cancel's answer (both are published back to back). */
const TARGET_FINAL_MS = 5000;
/** How long a retained result is waited for when signing needs the target's action. */
const RETAINED_MS = 2000;

export const cancelVerb: Verb = {
  name: 'cancel',
  usage: `Usage: homelab-cmd cancel HOST ID [--wait S] [--id CID] [--key-file K] [--force]
                          [--url U] [--prefix P] [--config F]

Asks HOST to stop request ID: a running one is killed with its whole process
group (a deployment rolls back), a queued or scheduled one never starts. ID
${CANCEL_OLDEST} stops the request that has run longest (what Home Assistant's Cancel button
sends). Publishes {"id": CID, "cancel": ID, "ts", "ttl": --wait} to P/HOST/cmd
and waits (default 60 s) for the answer, then prints ID's final result as JSON.
Exit 0 when ID ended cancelled; 1 when there was nothing to cancel (unknown id,
already ended, or it finished before the kill took effect: the answer is
printed); 2 on usage or connection errors; 3 when no answer came within --wait
(a rollback still running). --key-file signs the cancel (needed wherever ID's
action needs a signed request): the signature binds ID's action, read from its
retained result. --url, --prefix, --config and --force as for send.`,
  async run(argv) {
    const { values, positionals } = parse(
      this,
      argv,
      {
        ...targetOptions,
        wait: { type: 'string', short: 'w' },
        id: { type: 'string' },
        'key-file': { type: 'string', short: 'k' },
        force: { type: 'boolean' },
      },
      true,
    );
    if (values.help) return (out(this.usage), 0);
    const [host, target, ...extra] = positionals;
    if (!host || !target || extra.length > 0)
      throw new UsageError(`give exactly HOST and ID\n\n${this.usage}`);
    if (!HOST_ID_RE.test(host))
      throw new UsageError(`HOST "${host}" is not a host id (${HOST_ID_RE.source})`);
    if (target !== CANCEL_OLDEST && !REQUEST_ID_RE.test(target))
      throw new UsageError(
        `ID "${target}" is not a request id (${REQUEST_ID_RE.source}) nor ${CANCEL_OLDEST}`,
      );
    const id = values.id ?? randomUUID();
    if (!REQUEST_ID_RE.test(id) || id === target)
      throw new UsageError(`--id "${id}" must match ${REQUEST_ID_RE.source} and differ from ID`);
    const waitS = secondsOption('wait', values.wait) ?? 60;
    const key = signingKey(values);
    const dest = targetFrom(values);
    const topics = hostTopics(dest.prefix, host);
    const { client, url } = await connectFirst(dest);
    try {
      const presence = await readPresence(client, dest.prefix, host);
      if (!presence.row && !values.force) {
        err(`homelab-cmd cancel: ${unknownHostLine(host, dest.prefix, redactUrl(url), presence.known)}`);
        return 2;
      }
      if (presence.row?.status === 'offline')
        err(`homelab-cmd cancel: ${offlineLine(host, presence.row, waitS, Date.now())}`);
      const request: Record<string, unknown> = { id, cancel: target, ttl: waitS };
      let signer: ((replyTo: Parameters<typeof signedFields>[2]) => void) | undefined;
      if (key !== undefined) {
        // v2 binds the action that a cancel stops (docs/security.md § Signed requests): read it first.
        const action = await retainedAction(client, topics.resultFor(target), target, host);
        signer = (replyTo) => {
          request.sig = sign(key, { ...signedFields(host, request, replyTo), action, cancel: target });
        };
      }
      // The target's final, seen from the moment the cancel goes out (a retained one counts too).
      const targetFinal = watchFinal(client, topics.resultFor(target), target, host);
      await client.subscribeAsync(topics.resultFor(target), { qos: 1 });
      const answer = await sendAndWait(
        client,
        dest.prefix,
        host,
        request,
        waitS * 1000,
        (r) => err(`cancel ${r.status}…`),
        undefined,
        signer,
      );
      if (answer.status !== 'succeeded') {
        out(JSON.stringify(answer, null, 2));
        err(`homelab-cmd cancel: nothing cancelled — ${answer.error ?? answer.status}`);
        return 1;
      }
      const final = await targetFinal.within(TARGET_FINAL_MS);
      if (!final) {
        out(JSON.stringify(answer, null, 2));
        err(
          `homelab-cmd cancel: ${target} was cancelled, but its final result did not arrive on ${topics.resultFor(target)}`,
        );
        return 0;
      }
      out(JSON.stringify(final, null, 2));
      return final.status === 'cancelled' ? 0 : 1;
    } catch (e) {
      if (e instanceof NotFinished) {
        out(JSON.stringify(e.last, null, 2));
        err(
          `homelab-cmd cancel: the cancel of ${target} is not answered within --wait (${waitS} s); read ${topics.resultFor(target)} for how it ends`,
        );
        return 3;
      }
      const refused = refusal(e, url, `cancel requests of ${host} and read its results`);
      // A refusal, or a broker that stopped answering (client.ts boundAnswers): exit 2, as any connection error.
      if (refused instanceof ConnectionError) throw refused;
      err(`homelab-cmd cancel: ${(e as Error).message}`);
      return 1;
    } finally {
      await client.endAsync();
    }
  },
};

/** Collects the first final result of `id` on `topic`; `within` waits for it a little longer. */
function watchFinal(
  client: MqttClient,
  topic: string,
  id: string,
  host: string,
): { within(ms: number): Promise<Result | undefined> } {
  let final: Result | undefined;
  let notify: () => void = () => undefined;
  client.on('message', (t, payload) => {
    if (t !== topic || final) return;
    const r = ownFinalResult(payload, id, host);
    if (r === undefined || r === 'progress') return;
    final = r;
    notify();
  });
  return {
    within: (ms) =>
      final
        ? Promise.resolve(final)
        : new Promise((resolve) => {
            const timer = setTimeout(() => resolve(final), ms);
            notify = () => {
              clearTimeout(timer);
              resolve(final);
            };
          }),
  };
}

/** The action of request `id`, from its retained result: what a signed cancel binds. */
async function retainedAction(client: MqttClient, topic: string, id: string, host: string): Promise<string> {
  let found: string | undefined;
  let done: () => void = () => undefined;
  const got = new Promise<void>((resolve) => (done = resolve));
  const onMessage = (t: string, payload: Buffer) => {
    if (t !== topic) return;
    const r = readFormat(resultReader, payload);
    if (r && r.id === id && r.host === host && r.action !== null) {
      found = r.action;
      done();
    }
  };
  client.on('message', onMessage);
  const timer = setTimeout(done, RETAINED_MS);
  try {
    await client.subscribeAsync(topic, { qos: 0 });
    await got;
  } finally {
    clearTimeout(timer);
    client.removeListener('message', onMessage);
  }
  await client.unsubscribeAsync(topic).catch(() => undefined);
  if (found === undefined)
    throw new UsageError(
      `cannot sign a cancel of ${id}: no retained result on ${topic} names its action (the signature binds it) — check the id, or cancel it without --key-file where no signature is required`,
    );
  return found;
}
