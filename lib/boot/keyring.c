/* SPDX-License-Identifier: MIT */
#include "keyring.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

#include "hash.h"
#include "util.h"

int kos_key_id_of(const uint8_t raw[static KOS_ED25519_PUBLIC_LEN], uint8_t ret_id[static KOS_KEY_ID_LEN]) {
        uint8_t digest[KOS_SHA256_LEN];
        int r = kos_sha256(raw, KOS_ED25519_PUBLIC_LEN, digest);

        if (r < 0)
                return r;
        memcpy(ret_id, digest, KOS_KEY_ID_LEN);
        return 0;
}

static int raw_public_of(EVP_PKEY *pkey, uint8_t ret_raw[static KOS_ED25519_PUBLIC_LEN]) {
        size_t len = KOS_ED25519_PUBLIC_LEN;

        if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519)
                return -EPROTONOSUPPORT;
        if (EVP_PKEY_get_raw_public_key(pkey, ret_raw, &len) != 1 || len != KOS_ED25519_PUBLIC_LEN)
                return -EBADMSG;
        return 0;
}

int kos_key_public_from_pem(const char *pem, size_t len, uint8_t ret_raw[static KOS_ED25519_PUBLIC_LEN]) {
        if (len > KOS_KEY_FILE_MAX)
                return -EFBIG;
        BIO *bio = BIO_new_mem_buf(pem, (int)len);
        if (!bio)
                return -ENOMEM;
        EVP_PKEY *pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        BIO_free(bio);
        if (!pkey)
                return -EBADMSG;
        int r = raw_public_of(pkey, ret_raw);
        EVP_PKEY_free(pkey);
        return r;
}

static int add_pem(struct kos_public_key *keys, size_t max, size_t *n_keys, const char *pem, size_t len,
                   const char *file) {
        struct kos_public_key key = {0};
        int r;

        if (*n_keys >= max)
                return -E2BIG;
        r = kos_key_public_from_pem(pem, len, key.raw);
        if (r < 0)
                return r;
        if ((r = kos_key_id_of(key.raw, key.id)) < 0)
                return r;
        snprintf(key.file, sizeof key.file, "%s", file);
        for (size_t i = 0; i < *n_keys; i++)
                if (memcmp(keys[i].id, key.id, KOS_KEY_ID_LEN) == 0)
                        return 0; /* the same key twice is harmless */
        keys[(*n_keys)++] = key;
        return 0;
}

int kos_keyring_add_pem(struct kos_keyring *ring, const char *pem, size_t len, const char *file) {
        return add_pem(ring->keys, KOS_KEYRING_MAX_KEYS, &ring->n_keys, pem, len, file);
}

static bool has_pem_suffix(const char *name) {
        size_t n = strlen(name);
        return n > 4 && strcmp(name + n - 4, ".pem") == 0 && name[0] != '.';
}

/* The *.pem files of dirfd into keys (at most max of them). */
static int load_pem_files(int dirfd, const char *dir, struct kos_public_key *keys, size_t max, size_t *n_keys,
                          struct kos_error *ret_error) {
        DIR *d = fdopendir(fcntl(dirfd, F_DUPFD_CLOEXEC, 3));
        int r = 0;

        if (!d)
                return -errno;
        for (struct dirent *de; (de = readdir(d));) {
                if (!has_pem_suffix(de->d_name))
                        continue;
                _cleanup_free_ char *pem = NULL;
                size_t len;
                r = kos_read_file_at(dirfd, de->d_name, KOS_KEY_FILE_MAX, &pem, &len);
                if (r >= 0)
                        r = add_pem(keys, max, n_keys, pem, len, de->d_name);
                if (r < 0) {
                        kos_error_set(ret_error, r, "keyring %s: %s is not a usable Ed25519 public key (%s)", dir,
                                      de->d_name,
                                      r == -EBADMSG || r == -EPROTONOSUPPORT ? "not an Ed25519 PEM public key" : strerror(-r));
                        break;
                }
        }
        closedir(d);
        return r;
}

/* <dir>/revocation/: absent is fine; present, it must hold keys, none of
 * them also a manifest key (a key that signs both could vouch for itself). */
static int load_revocation_keys(int dirfd, const char *dir, struct kos_keyring *ring,
                                struct kos_error *ret_error) {
        _cleanup_close_ int subfd = openat(dirfd, KOS_KEYRING_REVOCATION_SUBDIR,
                                           O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        char label[512];
        int r;

        if (subfd < 0 && errno == ENOENT)
                return 0;
        if (subfd < 0)
                return kos_error_set(ret_error, -errno, "cannot open %s/%s: %s", dir, KOS_KEYRING_REVOCATION_SUBDIR,
                                     strerror(errno));
        snprintf(label, sizeof label, "%s/%s", dir, KOS_KEYRING_REVOCATION_SUBDIR);
        r = load_pem_files(subfd, label, ring->revocation_keys, KOS_KEYRING_MAX_REVOCATION_KEYS,
                           &ring->n_revocation_keys, ret_error);
        if (r >= 0 && ring->n_revocation_keys == 0)
                r = kos_error_set(ret_error, -ENOKEY, "keyring %s holds no *.pem public key", label);
        for (size_t i = 0; r >= 0 && i < ring->n_revocation_keys; i++)
                if (kos_keyring_find(ring, ring->revocation_keys[i].id))
                        r = kos_error_set(ret_error, -EBADMSG, "keyring %s: %s is also a manifest key", label,
                                          ring->revocation_keys[i].file);
        return r;
}

int kos_keyring_load(const char *dir, struct kos_keyring *ret, struct kos_error *ret_error) {
        _cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int r;

        memset(ret, 0, sizeof *ret);
        if (dirfd < 0)
                return kos_error_set(ret_error, -errno, "cannot open keyring directory %s: %s", dir, strerror(errno));
        r = load_pem_files(dirfd, dir, ret->keys, KOS_KEYRING_MAX_KEYS, &ret->n_keys, ret_error);
        if (r >= 0 && ret->n_keys == 0)
                r = kos_error_set(ret_error, -ENOKEY, "keyring %s holds no *.pem public key", dir);
        if (r >= 0)
                r = load_revocation_keys(dirfd, dir, ret, ret_error);
        return r;
}

const struct kos_public_key *kos_keyring_find(const struct kos_keyring *ring, const uint8_t id[static KOS_KEY_ID_LEN]) {
        for (size_t i = 0; i < ring->n_keys; i++)
                if (memcmp(ring->keys[i].id, id, KOS_KEY_ID_LEN) == 0)
                        return &ring->keys[i];
        return NULL;
}

int kos_ed25519_verify(const uint8_t raw_public[static KOS_ED25519_PUBLIC_LEN], const void *message, size_t len,
                       const uint8_t signature[static KOS_ED25519_SIGNATURE_LEN]) {
        EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw_public, KOS_ED25519_PUBLIC_LEN);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        int r = -ENOMEM;

        if (pkey && ctx) {
                r = 0;
                if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
                    EVP_DigestVerify(ctx, signature, KOS_ED25519_SIGNATURE_LEN, message, len) == 1)
                        r = 1;
        }
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(pkey);
        return r;
}

static int pem_of(EVP_PKEY *pkey, bool secret, char **ret) {
        BIO *bio = BIO_new(BIO_s_mem());
        char *data;
        int r = -EIO;

        if (!bio)
                return -ENOMEM;
        if (secret ? PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) : PEM_write_bio_PUBKEY(bio, pkey)) {
                long len = BIO_get_mem_data(bio, &data);
                *ret = strndup(data, (size_t)len);
                r = *ret ? 0 : -ENOMEM;
        }
        BIO_free(bio);
        return r;
}

int kos_key_generate(char **ret_secret_pem, char **ret_public_pem, uint8_t ret_id[static KOS_KEY_ID_LEN]) {
        EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        uint8_t raw[KOS_ED25519_PUBLIC_LEN];
        int r;

        if (!pkey)
                return -EIO;
        r = raw_public_of(pkey, raw);
        if (r >= 0)
                r = pem_of(pkey, true, ret_secret_pem);
        if (r >= 0) {
                r = pem_of(pkey, false, ret_public_pem);
                if (r < 0)
                        free(TAKE_PTR(*ret_secret_pem));
        }
        if (r >= 0)
                r = kos_key_id_of(raw, ret_id);
        EVP_PKEY_free(pkey);
        return r;
}

int kos_key_sign(const char *secret_pem, size_t secret_len, const void *message, size_t len,
                 uint8_t ret_signature[static KOS_ED25519_SIGNATURE_LEN], uint8_t ret_id[static KOS_KEY_ID_LEN]) {
        uint8_t raw[KOS_ED25519_PUBLIC_LEN];
        size_t sig_len = KOS_ED25519_SIGNATURE_LEN;
        int r;

        if (secret_len > KOS_KEY_FILE_MAX)
                return -EFBIG;
        BIO *bio = BIO_new_mem_buf(secret_pem, (int)secret_len);
        if (!bio)
                return -ENOMEM;
        EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        BIO_free(bio);
        if (!pkey)
                return -EBADMSG;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        r = raw_public_of(pkey, raw);
        if (r >= 0 && (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) != 1 ||
                       EVP_DigestSign(ctx, ret_signature, &sig_len, message, len) != 1 ||
                       sig_len != KOS_ED25519_SIGNATURE_LEN))
                r = -EIO;
        if (r >= 0)
                r = kos_key_id_of(raw, ret_id);
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(pkey);
        return r;
}

int kos_key_public_to_pem(const uint8_t raw[static KOS_ED25519_PUBLIC_LEN], char **ret_pem) {
        EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, KOS_ED25519_PUBLIC_LEN);
        int r;

        if (!pkey)
                return -ENOMEM;
        r = pem_of(pkey, false, ret_pem);
        EVP_PKEY_free(pkey);
        return r;
}
