/* SPDX-License-Identifier: MIT */
/* Content-defined chunks of a component, and the chunk index `kos push`
 * publishes beside each component layer (docs/format.md, "Chunked
 * components"). A device that holds an older component rebuilds the new one
 * from the chunks both share plus the chunks it fetches; the index only
 * says where bytes may be found: the rebuilt component is accepted only when
 * it hashes to the manifest's signed sha256.
 *
 * The chunker is FastCDC (Xia et al., USENIX ATC 2016) with normalized
 * chunking (level 2): a gear hash over a 64-byte window, cut points between
 * KOS_CHUNK_MIN and KOS_CHUNK_MAX bytes, about KOS_CHUNK_AVG on average. Its
 * parameters and gear table are part of the format (chunker id 1): a
 * publisher and a device must cut the same bytes at the same places. A pure
 * file: no I/O but read(), no allocation but the caller's. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kos-error.h"
#include "sha256.h"
#include "util.h"

#define KOS_CHUNK_MIN (8u << 10)
#define KOS_CHUNK_AVG (32u << 10)
#define KOS_CHUNK_MAX (128u << 10)
#define KOS_CHUNKER_FASTCDC_1 1u

/* The length of the chunk at the start of data (len bytes, the rest of the
 * stream, or at least KOS_CHUNK_MAX of it): at most KOS_CHUNK_MAX, at least
 * KOS_CHUNK_MIN unless len is smaller. */
size_t kos_chunk_cut(const uint8_t *data, size_t len);

/* Cuts the file behind fd into chunks, reading it once from its current
 * offset. The buffer holds 4 * KOS_CHUNK_MAX bytes. */
struct kos_chunker {
        int fd;
        uint8_t *buffer;
        size_t start, end; /* unconsumed bytes: buffer[start..end) */
        bool eof;
};

#define KOS_CHUNKER_BUFFER (4 * KOS_CHUNK_MAX)

/* buffer: KOS_CHUNKER_BUFFER bytes, owned by the caller. */
void kos_chunker_init(struct kos_chunker *c, int fd, uint8_t *buffer);
/* 1 with the next chunk in *ret_data (valid until the next call) and
 * *ret_len; 0 at the end of the file; a negative errno when read() fails. */
_kos_must_check_ int kos_chunker_next(struct kos_chunker *c, const uint8_t **ret_data, size_t *ret_len);

/* --- The chunk index ---------------------------------------------------------
 * A binary blob (all integers little-endian):
 *   0  "KOSCHNK1"          magic
 *   8  u32 chunker         KOS_CHUNKER_FASTCDC_1
 *  12  u32 count           chunks
 *  16  u64 size            the component's size: the sum of the chunks' lengths
 *  24  u8[32] sha256       the component's sha256
 *  56  count entries of KOS_CHUNK_ENTRY_LEN bytes:
 *      u8[32] sha256 of the chunk, u8[32] sha256 of its blob (the chunk
 *      compressed with zstd: its OCI digest), u32 length, u32 blob length */
#define KOS_CHUNK_INDEX_MAGIC "KOSCHNK1"
#define KOS_CHUNK_INDEX_HEADER_LEN 56u
#define KOS_CHUNK_ENTRY_LEN 72u
/* A zstd frame of one chunk: ZSTD_COMPRESSBOUND(KOS_CHUNK_MAX), rounded up. */
#define KOS_CHUNK_BLOB_MAX (KOS_CHUNK_MAX + (KOS_CHUNK_MAX >> 7) + 1024u)

struct kos_chunk_entry {
        uint8_t sha256[KOS_SHA256_LEN];
        uint8_t blob_sha256[KOS_SHA256_LEN];
        uint32_t length, blob_length;
};

struct kos_chunk_index {
        uint8_t sha256[KOS_SHA256_LEN];
        uint64_t size;
        size_t count;
        struct kos_chunk_entry *entries; /* owned */
};

/* The most chunks an honest index of a component of size bytes has (every
 * chunk but the last is at least KOS_CHUNK_MIN long), and so the cap on the
 * index blob's size before it is fetched. */
uint64_t kos_chunk_index_max_count(uint64_t size);
uint64_t kos_chunk_index_max_bytes(uint64_t size);

/* Parses an untrusted index that must describe the component sha256 of
 * size bytes (from the signed manifest): exact length, magic, chunker, the
 * component's sha256 and size, every chunk 1 to KOS_CHUNK_MAX bytes and all
 * but the last at least KOS_CHUNK_MIN, every blob 1 to KOS_CHUNK_BLOB_MAX
 * bytes, the lengths summing to size. 0, -ENOMEM, or -EBADMSG with ret_error
 * saying why. A pure function (tests/fuzz/fuzz_chunk_index.c). */
_kos_must_check_ int kos_chunk_index_parse(const uint8_t *untrusted, size_t len, const uint8_t sha256[static KOS_SHA256_LEN],
                                           uint64_t size, struct kos_chunk_index *ret, struct kos_error *ret_error);
void kos_chunk_index_done(struct kos_chunk_index *index);

/* Serializes index into a new buffer of KOS_CHUNK_INDEX_HEADER_LEN +
 * count * KOS_CHUNK_ENTRY_LEN bytes. */
_kos_must_check_ int kos_chunk_index_encode(const struct kos_chunk_index *index, uint8_t **ret, size_t *ret_len);
