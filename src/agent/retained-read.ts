/**
 * The retained messages on `topics` now: subscribed (Retain Handling 0: sent even to a subscription a
 * persistent session already holds), gathered until each topic has one or `ms` pass, unsubscribed.
 * Topics with none are absent from the map (restart-check.ts, discovery.ts).
 */
import type { IPublishPacket, MqttClient } from 'mqtt';

export async function readRetained(
  client: MqttClient | undefined,
  topics: string[],
  ms: number,
): Promise<Map<string, Buffer>> {
  const got = new Map<string, Buffer>();
  if (!client || topics.length === 0) return got;
  const wanted = new Set(topics);
  let done: () => void = () => undefined;
  const all = new Promise<void>((resolve) => (done = resolve));
  const onMessage = (topic: string, payload: Buffer, packet: IPublishPacket) => {
    if (!wanted.has(topic) || !packet.retain || got.has(topic)) return;
    got.set(topic, payload);
    if (got.size === wanted.size) done();
  };
  client.on('message', onMessage);
  let timer: NodeJS.Timeout | undefined;
  try {
    for (const topic of wanted) await client.subscribeAsync(topic, { qos: 0, rh: 0 });
    await Promise.race([all, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
    client.removeListener('message', onMessage);
  }
  for (const topic of wanted) await client.unsubscribeAsync(topic).catch(() => undefined);
  return got;
}
