/* hyperfile: CRC32C (Castagnoli), the checksum on every on-disk structure.
 *
 * Uses the SSE4.2 crc32 instruction when the CPU has it, a slicing table
 * otherwise.  hf_crc32c (0, buf, len) starts a new checksum; pass a
 * previous result as crc to continue it over more bytes.
 */
#ifndef HF_CRC32C_H
#define HF_CRC32C_H

#include <stddef.h>
#include <stdint.h>

extern uint32_t hf_crc32c (uint32_t crc, const void *buf, size_t len);

/* The CRC of A followed by B from crc_a = hf_crc32c (0, A, |A|), crc_b =
 * hf_crc32c (0, B, len_b) and len_b, without reading the bytes (zlib's
 * crc32_combine for CRC32C): crc_a advanced over len_b zero bytes, which
 * is a multiplication by x^(8 len_b) modulo the polynomial, xor crc_b.
 * About 32 * log2 (len_b) shifts: for a 4 KiB block a small fraction of
 * hashing it again.  Lets a block's CRC, computed once, serve as part of
 * a larger checksum (the log record's). */
extern uint32_t hf_crc32c_combine (uint32_t crc_a, uint32_t crc_b,
                                   uint64_t len_b);

#endif /* HF_CRC32C_H */
