/** cluster-key-slot (the one ioredis uses) ships no types: Redis Cluster's CRC16 hash slot of a key or channel. */
declare module 'cluster-key-slot' {
  function calculateSlot(key: string | Buffer): number;
  export default calculateSlot;
}
