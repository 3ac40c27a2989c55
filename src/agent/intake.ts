/**
 * Intake: one delivery on a command topic, read into what the pipeline does with it — a new request to
 * admit, a known id to answer with its stored result, or a rejection. It decides nothing about running.
 */
import { randomUUID } from 'node:crypto';
import type { IPublishPacket } from 'mqtt';
import { ACTION_NAME_RE } from '../core/names.js';
import { parseDelivery, type Request } from '../core/request.js';
import type { Rejection, RequestRef } from '../core/result.js';
import { AUTHENTICATED_USER_PROPERTY } from '../core/sender.js';

/** Where a request came from, for the audit log. */
export interface Origin {
  topic: string;
  client: string | undefined;
  /** What the sender says about itself (user property `client_id`): unproven. */
  claimed?: string | undefined;
}

export type Delivery =
  | { kind: 'new'; request: Request; ref: RequestRef }
  | { kind: 'repeat'; id: string }
  /** `onIdTopic` false: the id's topic holds a result that must stay (a replay). */
  | { kind: 'reject'; ref: RequestRef; rejection: Rejection; onIdTopic: boolean }
  /** Arrived while the agent stops: answered `shutting_down`, which becomes the id's final (outcomes.ts). */
  | { kind: 'stopping'; ref: RequestRef; error: string };

export interface IntakeState {
  /** Whether the journal knows this id. */
  known(id: string): boolean;
  /** false once the agent began to stop. */
  accepting: boolean;
  /** The params a press (HA's button) runs with: the values HA's select/number entities hold. */
  pressParams(action: string): Record<string, string>;
}

/** `client`: the account the broker authenticated, where it vouches for it (core/sender.ts). */
export function originOf(packet: IPublishPacket): Origin {
  const props = packet.properties?.userProperties;
  const one = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return {
    topic: packet.topic,
    client: one(props?.[AUTHENTICATED_USER_PROPERTY]),
    claimed: one(props?.client_id),
  };
}

export function readDelivery(
  topicAction: string | undefined,
  payload: Buffer,
  packet: IPublishPacket,
  now: number,
  state: IntakeState,
): Delivery {
  const parsed = parseDelivery({ topicAction, payload, retained: packet.retain === true }, now, randomUUID);
  if (!parsed.ok) {
    // A request naming an id we know — a retained copy, or an invalid one reusing it — is answered with
    // the stored result, never a rejection over it (docs/security.md § Answers that cannot be faked).
    if (state.known(parsed.ref.id)) return { kind: 'repeat', id: parsed.ref.id };
    return { kind: 'reject', ref: parsed.ref, rejection: parsed.rejection, onIdTopic: true };
  }
  const req = parsed.request;
  if (req.press && req.action !== undefined) req.params = state.pressParams(req.action);
  const ref: RequestRef = { id: req.id, action: req.action ?? null, transaction: req.transaction };
  if (state.known(req.id)) {
    // A signed request seen before is a replay (someone captured it), not a retry: it learns nothing,
    // and its rejection goes where it replaces nothing — never over the id's stored result.
    if (req.sig !== undefined)
      return {
        kind: 'reject',
        ref,
        rejection: {
          code: 'replayed',
          error: `id ${req.id} was already used; a signed request is valid once — sign a new request with a new id`,
        },
        onIdTopic: false,
      };
    return { kind: 'repeat', id: req.id };
  }
  if (!state.accepting)
    return {
      kind: 'stopping',
      ref,
      error:
        'the agent is stopping; the request was not run — send it again with a new id once the host is back online',
    };
  return { kind: 'new', request: req, ref };
}

/**
 * A command-topic delivery whose handling failed unexpectedly (src/agent/dispatch.ts): answered under a
 * new id, so it can never replace a known id's result.
 */
export function refusedRef(topicAction: string | undefined): RequestRef {
  const action = topicAction !== undefined && ACTION_NAME_RE.test(topicAction) ? topicAction : null;
  return { id: randomUUID(), action };
}
