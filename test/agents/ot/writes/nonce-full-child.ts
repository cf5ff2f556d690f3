/**
 * A child for nonce-record.test.ts: claims nonces one after another in the record in argv[2],
 * under the file size limit its parent set (`ulimit -f`), so that the disk "fills" in the middle
 * of a line; prints each claim's outcome as one JSON line.
 */
import { NonceRecord } from '../../../../agents/ot/writes/nonce-record.ts';

const [dir = '', count = '40'] = process.argv.slice(2);
const record = await NonceRecord.open(dir);
for (let index = 0; index < Number(count); index++) {
  const nonce = `n-full-${String(index).padStart(12, '0')}`;
  const outcome = await record.claim(nonce, Date.now() + 60_000).then(
    () => 'claimed',
    (error: unknown) => (error as { code?: string }).code ?? String(error),
  );
  process.stdout.write(`${JSON.stringify({ nonce, outcome })}\n`);
}
await record.close();
