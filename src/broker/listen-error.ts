/** A listen() that failed, as an error a person can act on (port taken, privileged port, foreign address). */
import { ConnectionError, PortInUseError } from '../errors.js';

export function listenError(err: NodeJS.ErrnoException, host: string, port: number): Error {
  if (err.code === 'EADDRINUSE') {
    return new PortInUseError(
      `${host}:${port} is in use — is Mosquitto running? Use --port, or point mqtt.url at it`,
      host,
      port,
    );
  }
  if (err.code === 'EACCES') {
    return new ConnectionError(`${host}:${port} needs privileges to listen on — use --port above 1023`);
  }
  if (err.code === 'EADDRNOTAVAIL') {
    return new ConnectionError(
      `${host} is not an address of this machine — use --host 127.0.0.1 or one of its interfaces`,
    );
  }
  return new ConnectionError(`cannot listen on ${host}:${port}: ${err.message}`);
}
