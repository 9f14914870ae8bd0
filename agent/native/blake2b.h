/* BLAKE2b, the reference implementation from RFC 7693 (Appendix C), trimmed to unkeyed hashing.
 *
 * ClawTrace keys de-duplicated turns by the first 8 bytes of BLAKE2b-64 of the de-dup key, the
 * same value Python's hashlib.blake2b(key, digest_size=8) gives, so stores written with or
 * without the native scanner agree. The RFC's code is used under its BSD licence (the IETF Trust
 * legal provisions for code components). */
#ifndef CLAWTRACE_BLAKE2B_H
#define CLAWTRACE_BLAKE2B_H

#include <stddef.h>
#include <stdint.h>

/* `outlen` (1..64) bytes of BLAKE2b(data) into `out`. */
void ct_blake2b(void *out, size_t outlen, const void *data, size_t len);

#endif
