/**
 * Who sent a command, as the embedded broker tells it (docs/security.md § Broker identities).
 * MQTT does not tell a subscriber who published; the embedded broker stamps each command with the
 * account that published it, after removing any such stamp the sender set. Only the agent's own
 * broker can vouch for that: it says so in its CONNACK (MQTT 5 Response Information, which the
 * agent requests), and on any other broker the agent treats the property as unproven and drops it.
 */

/** The user property the embedded broker sets on commands: the authenticated username. */
export const AUTHENTICATED_USER_PROPERTY = 'homelab-cmd-user';

/** The embedded broker's Response Information: "I stamp commands with the authenticated user". */
export const STAMPING_BROKER = `homelab-cmd-broker; stamps ${AUTHENTICATED_USER_PROPERTY}`;
