/**
 * Certificate serial numbers as the CA, the CRL and the relay compare them: lower-case hex with no
 * leading zeros (RFC 5280 section 4.1.2.2: a serial is an integer; how it was printed does not count).
 */
export function normalizeSerialHex(serialHex: string): string {
  const digits = serialHex.toLowerCase().replace(/^0+/, '');
  return digits === '' ? '0' : digits;
}
