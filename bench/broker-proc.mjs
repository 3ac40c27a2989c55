/**
 * The embedded broker (startBroker from dist/, as `homelab-cmd broker` runs it)
 * alone in a process on a free loopback port, so its RSS can be read apart from
 * the agents'. Prints `port N` once listening; SIGTERM closes it.
 */
import process from 'node:process';
import { startBroker } from '../dist/broker/broker.js';
import { silentLogger } from '../dist/log.js';

const broker = await startBroker({
  host: '127.0.0.1',
  port: 0,
  users: [],
  prefix: 'homelab',
  discoveryPrefix: 'homeassistant',
  log: silentLogger(),
});
process.stdout.write(`port ${broker.port}\n`);
const stop = () => {
  broker.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
