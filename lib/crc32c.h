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

#endif /* HF_CRC32C_H */
