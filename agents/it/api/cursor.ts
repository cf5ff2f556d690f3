/**
 * Cursors as clients hold them: `<epoch>-<id>`, the store's epoch and the id of the last entry the
 * client has. The epoch changes when the store reopens after a crash (recent-snapshot.ts), where
 * ids may be issued again: a cursor of another epoch is refused, never misread.
 */
import { DmzError } from '../../../relay/protocol/errors.ts';
import type { RecentSink } from '../sinks/recent-sink.ts';

const CURSOR = /^([0-9]{1,9})-([0-9]{1,15})$/;

export function formatCursor(store: RecentSink, id: number): string {
  return `${store.epoch}-${id}`;
}

/** The id a client's cursor names in `store`; AGENT_ERR_API_BAD_CURSOR or _CURSOR_EXPIRED otherwise. */
export function parseCursor(store: RecentSink, text: string): number {
  const match = CURSOR.exec(text);
  if (match === null) {
    throw new DmzError('AGENT_ERR_API_BAD_CURSOR', 'a cursor is <epoch>-<id>, as the API returned it');
  }
  const epoch = Number(match[1]);
  const id = Number(match[2]);
  if (epoch !== store.epoch) {
    throw new DmzError(
      'AGENT_ERR_API_CURSOR_EXPIRED',
      `the cursor is of store epoch ${epoch}, this store is at epoch ${store.epoch}: read the current values again and go on from their cursor`,
    );
  }
  if (id > store.latestId) {
    throw new DmzError(
      'AGENT_ERR_API_BAD_CURSOR',
      `the cursor is ahead of this store (at ${store.latestId})`,
    );
  }
  return id;
}
