// aedes-persistence-level@9 ships no types; startBroker uses only its factory (see disk-persistence.ts).
declare module 'aedes-persistence-level' {
  /** A CallBackPersistence over an open level database (a ClassicLevel): promises when no callback is given, as aedes 2 calls it. */
  export default function persistenceLevel(db: object): unknown;
}
