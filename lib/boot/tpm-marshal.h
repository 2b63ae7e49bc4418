/* SPDX-License-Identifier: MIT */
/* Big-endian writing and strict reading of TPM structures: the one writer
 * and reader of tpm.c (the Boot Kernel's commands) and of lib/system's
 * signed policies and sessions. Header-only, so PID 1 links no more. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct kos_tpm_out {
        uint8_t *buf;
        size_t size, len;
        bool overflow;
};

static inline void out_put(struct kos_tpm_out *w, const void *data, size_t n) {
        if (w->overflow || n > w->size - w->len) {
                w->overflow = true;
                return;
        }
        memcpy(w->buf + w->len, data, n);
        w->len += n;
}
static inline void out_u8(struct kos_tpm_out *w, uint8_t v) { out_put(w, &v, 1); }
static inline void out_u16(struct kos_tpm_out *w, uint16_t v) { out_put(w, (uint8_t[]){v >> 8, v & 0xff}, 2); }
static inline void out_u32(struct kos_tpm_out *w, uint32_t v) {
        out_put(w, (uint8_t[]){v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff}, 4);
}
static inline void out_tpm2b(struct kos_tpm_out *w, const void *data, uint16_t n) {
        out_u16(w, n);
        out_put(w, data, n);
}
/* commandSize is patched in by out_end_command(). */
static inline void out_begin_command(struct kos_tpm_out *w, uint16_t tag, uint32_t code) {
        out_u16(w, tag);
        out_u32(w, 0);
        out_u32(w, code);
}
static inline int out_end_command(struct kos_tpm_out *w) {
        if (w->overflow || w->len < 10 || w->len > INT32_MAX)
                return -ENOBUFS;
        uint32_t n = (uint32_t)w->len;
        w->buf[2] = n >> 24, w->buf[3] = (n >> 16) & 0xff, w->buf[4] = (n >> 8) & 0xff, w->buf[5] = n & 0xff;
        return (int)w->len;
}
/* The length of what out_put() wrote, or -ENOBUFS. */
static inline int out_end(struct kos_tpm_out *w) {
        return w->overflow || w->len > INT32_MAX ? -ENOBUFS : (int)w->len;
}

struct kos_tpm_in {
        const uint8_t *p;
        size_t len, pos;
};

static inline int in_get(struct kos_tpm_in *r, void *out, size_t n) {
        if (n > r->len - r->pos)
                return -EBADMSG;
        if (out)
                memcpy(out, r->p + r->pos, n);
        r->pos += n;
        return 0;
}
static inline int in_u8(struct kos_tpm_in *r, uint8_t *v) { return in_get(r, v, 1); }
static inline int in_u16(struct kos_tpm_in *r, uint16_t *v) {
        uint8_t b[2];
        if (in_get(r, b, 2) < 0)
                return -EBADMSG;
        *v = (uint16_t)(b[0] << 8 | b[1]);
        return 0;
}
static inline int in_u32(struct kos_tpm_in *r, uint32_t *v) {
        uint8_t b[4];
        if (in_get(r, b, 4) < 0)
                return -EBADMSG;
        *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        return 0;
}
/* A TPM2B of exactly `want` bytes (want > 0), or of at most max (want == 0). */
static inline int in_tpm2b(struct kos_tpm_in *r, size_t want, size_t max, uint8_t *out, uint16_t *ret_size) {
        uint16_t n;
        if (in_u16(r, &n) < 0 || (want ? n != want : n > max) || in_get(r, out, n) < 0)
                return -EBADMSG;
        if (ret_size)
                *ret_size = n;
        return 0;
}
/* A u16 or u32 that must hold exactly `want`. */
static inline int in_expect_u16(struct kos_tpm_in *r, uint16_t want) {
        uint16_t v;
        return in_u16(r, &v) < 0 || v != want ? -EBADMSG : 0;
}
static inline int in_expect_u32(struct kos_tpm_in *r, uint32_t want) {
        uint32_t v;
        return in_u32(r, &v) < 0 || v != want ? -EBADMSG : 0;
}
static inline bool in_at_end(const struct kos_tpm_in *r) { return r->pos == r->len; }
