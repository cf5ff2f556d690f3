/** What recent-epochs-child.ts and its test agree on (importing the child would run it). */
export const EPOCHS_TOPIC = 'press-7/line1/temp';
/** Points written after each epoch is noted. */
export const EPOCH_BLOCK = 10;

/** The log epoch the child notes before block `block` (1, 2, ...): the block's number in 16 hex digits. */
export function epochOfBlock(block: number): string {
  return block.toString(16).padStart(16, '0');
}
