/** Reading the relay's Prometheus metrics the way a scrape would, without the HTTP round trip. */
import type { RunningRelay } from '../../relay/server/relay.ts';

/** The value of metric `name`, summed over every series whose labels include `labels` (0 if none). */
export async function readMetric(
  relay: RunningRelay,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): Promise<number> {
  const metric = relay.metrics.registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric named ${name}`);
  const { values } = await metric.get();
  return values
    .filter((sample) => Object.entries(labels).every(([label, value]) => sample.labels[label] === value))
    .reduce((sum, sample) => sum + sample.value, 0);
}
