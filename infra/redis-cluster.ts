/**
 * `pnpm redis:cluster [--replicas N]`: a three-master Redis Cluster on loopback ports for trying
 * the sharded bus (and the state on a cluster) by hand; with `--replicas 1` every master has a
 * replica, so killing a master (its pid file is in the printed directory) shows a failover the
 * pods follow. Prints the REDIS_BUS_CLUSTER_NODES value and stays up until Ctrl-C, which kills
 * the nodes and removes their directory. Needs Debian's redis-server (7.0) and redis-cli.
 *
 *   pnpm redis:cluster                      # in one terminal
 *   REDIS_BUS_CLUSTER_NODES=… pnpm start --pods 4   # in another
 *   (REDIS_STATE_CLUSTER_NODES=<the same> puts the state there too)
 */
import { parseArgs } from 'node:util';
import { startRedisCluster } from '@chat/testing/redis-cluster';

const MAX_REPLICAS = 2;
const USAGE = `usage: pnpm redis:cluster [--replicas 0-${MAX_REPLICAS}]
  three masters (with that many replicas each) on free loopback ports, up until Ctrl-C`;
let args: { replicas: string; help?: boolean };
try {
  args = parseArgs({ options: { replicas: { type: 'string', default: '0' }, help: { type: 'boolean', short: 'h' } } }).values;
} catch (error) {
  // parseArgs throws on an unknown option: its message, not a stack trace.
  console.error(`redis:cluster: ${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
  process.exit(2);
}
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
const replicas = Number(args.replicas);
if (!Number.isInteger(replicas) || replicas < 0 || replicas > MAX_REPLICAS) {
  console.error(`--replicas takes 0 to ${MAX_REPLICAS} (replicas per master), not "${args.replicas}"`);
  process.exit(1);
}

const cluster = await startRedisCluster({ masters: 3, replicas });
console.log(`Redis Cluster up: 3 masters${replicas > 0 ? ` with ${replicas} replica(s) each` : ''}, files in ${cluster.dir}

  REDIS_BUS_CLUSTER_NODES=${cluster.nodesString}

(the same value as REDIS_STATE_CLUSTER_NODES puts the state there too). Ctrl-C stops it.`);

// `on`, not `once`: Ctrl-C often arrives twice (the terminal's, then tsx relaying its own when
// the script is slow to acknowledge on a busy machine; or a second press). Without a listener
// left, the second one ends the process halfway through close(), its directory left behind.
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  console.log('Stopping the Redis Cluster…');
  await cluster.close();
  console.log('Redis Cluster stopped.');
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
// Keeps the process alive until a signal arrives.
setInterval(() => undefined, 1 << 30);
