/* SPDX-License-Identifier: MIT */
/* Content-derived parameters of kos component build (reproducible.h). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hash.h"
#include "reproducible.h"

#define KEY_FILE_MAX 4096

int kos_file_sha256(const char *path, uint8_t ret_digest[static KOS_SHA256_LEN]) {
        struct stat st;
        _cleanup_close_ int fd = kos_open_regular_at(AT_FDCWD, path, O_RDONLY | O_NOFOLLOW, &st);
        if (fd < 0)
                return fd;
        struct kos_hash_job job = {.fd = fd, .size = (uint64_t)st.st_size, .copy_fd = -1, .compute_only = true};
        int r = kos_hash_jobs(&job, 1, NULL, NULL);
        if (r < 0)
                return r;
        if (job.status != KOS_HASH_MATCH)
                return job.status == KOS_HASH_IO_ERROR ? job.error : -EIO;
        memcpy(ret_digest, job.digest, KOS_SHA256_LEN);
        return 0;
}

void kos_derive_from_content(const char *label, const uint8_t content[static KOS_SHA256_LEN], uint8_t *ret,
                             size_t len) {
        uint8_t digest[KOS_SHA256_LEN];
        unsigned digest_len = 0;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();

        /* The label's NUL separates it from the content, so no two (label,
         * content) pairs hash the same bytes. SHA-256 cannot fail on a
         * valid context; a NULL context (out of memory) is fatal below. */
        if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
            EVP_DigestUpdate(ctx, label, strlen(label) + 1) != 1 ||
            EVP_DigestUpdate(ctx, content, KOS_SHA256_LEN) != 1 || EVP_DigestFinal_ex(ctx, digest, &digest_len) != 1)
                abort();
        EVP_MD_CTX_free(ctx);
        memcpy(ret, digest, len < sizeof digest ? len : sizeof digest);
}

void kos_derive_uuid(const char *label, const uint8_t content[static KOS_SHA256_LEN],
                     char ret[static KOS_UUID_STRING_LEN + 1]) {
        uint8_t u[16];

        kos_derive_from_content(label, content, u, sizeof u);
        u[6] = (uint8_t)((u[6] & 0x0f) | 0x80); /* version 8 */
        u[8] = (uint8_t)((u[8] & 0x3f) | 0x80); /* variant 10 */
        snprintf(ret, KOS_UUID_STRING_LEN + 1,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3],
                 u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

int kos_derive_volume_key(const char *key_path, uint8_t ret[static KOS_VOLUME_KEY_LEN]) {
        static const char label[] = "kos-luks2-volume-key-v1";
        _cleanup_free_ char *key = NULL;
        size_t key_len = 0;
        unsigned out_len = 0;

        int r = kos_read_file_at(AT_FDCWD, key_path, KEY_FILE_MAX, &key, &key_len);
        if (r == -EFBIG)
                return -EBADMSG;
        if (r < 0)
                return r;
        if (key_len == 0)
                return -EBADMSG;
        uint8_t *mac = HMAC(EVP_sha512(), key, (int)key_len, (const uint8_t *)label, sizeof label - 1, ret, &out_len);
        explicit_bzero(key, key_len);
        return mac && out_len == KOS_VOLUME_KEY_LEN ? 0 : -EIO;
}
