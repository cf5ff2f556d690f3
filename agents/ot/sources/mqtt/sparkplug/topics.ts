/**
 * Sparkplug B topics (Eclipse Sparkplug 3.0, "Topic Namespace Elements"):
 * `spBv1.0/<group_id>/<message_type>/<edge_node_id>[/<device_id>]`, the filters a host reads a
 * group with, the command topic a rebirth request goes to, and the point topic a metric is
 * written under: `<edge node>/<metric name>` or `<edge node>/<device>/<metric name>`, each part
 * made to fit the relay's topic grammar.
 */
import type { SparkplugConfig } from '../config.ts';

export const SPARKPLUG_NAMESPACE = 'spBv1.0';
/** What a host application reads; NCMD/DCMD are its own, STATE is the hosts'. */
export const SPARKPLUG_MESSAGE_TYPES = ['NBIRTH', 'NDEATH', 'NDATA', 'DBIRTH', 'DDEATH', 'DDATA'] as const;
export type SparkplugMessageType = (typeof SPARKPLUG_MESSAGE_TYPES)[number];
/** The node control metric a host sets to true in an NCMD to ask an edge node for a new NBIRTH. */
export const REBIRTH_METRIC = 'Node Control/Rebirth';
/** The birth/death sequence number: an NDEATH belongs to the NBIRTH with the same bdSeq. */
export const BDSEQ_METRIC = 'bdSeq';

export interface SparkplugTopic {
  readonly group: string;
  readonly type: SparkplugMessageType;
  readonly edgeNode: string;
  /** For DBIRTH, DDEATH and DDATA. */
  readonly device: string | undefined;
}

/** Characters a group, edge node or device id must not hold: they would change the topic's shape. */
const FORBIDDEN_ID_CHARACTERS = /[+/#]/;
const SEGMENT_CHARACTER = /[A-Za-z0-9_.-]/;

/** Why `id` cannot be a group, edge node or device id, or undefined. */
export function findIdProblem(id: string): string | undefined {
  return FORBIDDEN_ID_CHARACTERS.test(id)
    ? 'must not hold "+", "/" or "#" (Sparkplug 3.0 topic namespace)'
    : undefined;
}

/** One filter per message type, so nothing else under the group (commands, STATE) is received. */
export function sparkplugFilters(config: SparkplugConfig): string[] {
  const node = config.edgeNode === undefined ? '' : `/${config.edgeNode}`;
  return SPARKPLUG_MESSAGE_TYPES.map((type) => `${SPARKPLUG_NAMESPACE}/${config.group}/${type}${node}/#`);
}

/** The parts of a Sparkplug topic of `group`, or undefined if it is not one this host reads. */
export function parseSparkplugTopic(topic: string, group: string): SparkplugTopic | undefined {
  const levels = topic.split('/');
  const [namespace, topicGroup, type, edgeNode, device] = levels;
  if (namespace !== SPARKPLUG_NAMESPACE || topicGroup !== group || edgeNode === undefined) return undefined;
  if (!isMessageType(type) || edgeNode === '') return undefined;
  const deviceMessage = type.startsWith('D');
  if (levels.length !== (deviceMessage ? 5 : 4) || device === '') return undefined;
  return { group, type, edgeNode, device: deviceMessage ? device : undefined };
}

export function rebirthCommandTopic(group: string, edgeNode: string): string {
  return `${SPARKPLUG_NAMESPACE}/${group}/NCMD/${edgeNode}`;
}

/**
 * The point topic of a metric, below the source's prefix. Metric names are paths (`Inputs/Temp 1`):
 * their `/` levels stay levels; a character outside the topic grammar becomes `_`, an empty level
 * is left out, and a level of dots gets underscores. Two metrics that come out alike are told apart
 * by the topic table, which refuses the second.
 */
export function metricTopic(edgeNode: string, device: string | undefined, metric: string): string {
  const levels = [edgeNode, ...(device === undefined ? [] : [device]), ...metric.split('/')];
  return levels
    .map(toSegment)
    .filter((segment) => segment.length > 0)
    .join('/');
}

function toSegment(text: string): string {
  let segment = '';
  for (const character of text) segment += SEGMENT_CHARACTER.test(character) ? character : '_';
  return segment === '.' || segment === '..' ? segment.replaceAll('.', '_') : segment;
}

function isMessageType(type: string | undefined): type is SparkplugMessageType {
  return (SPARKPLUG_MESSAGE_TYPES as readonly (string | undefined)[]).includes(type);
}
