/* SPDX-License-Identifier: MIT */
/* The DataFS's recovery key slot: see datafs-recovery.h. */
#include "datafs-recovery.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util.h"

static X509 *read_cert(const char *path) {
        FILE *f = fopen(path, "re");
        X509 *cert = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;

        if (f)
                fclose(f);
        return cert;
}

/* DER of the EnvelopedData of pass for cert, base64, into a new string. */
static char *envelope(X509 *cert, const char *pass) {
        STACK_OF(X509) *recipients = sk_X509_new_null();
        BIO *in = BIO_new_mem_buf(pass, (int)strlen(pass));
        CMS_ContentInfo *cms = NULL;
        unsigned char *der = NULL;
        char *b64 = NULL;
        int len = 0;

        if (recipients && in && sk_X509_push(recipients, cert) > 0)
                cms = CMS_encrypt(recipients, in, EVP_aes_256_cbc(), CMS_BINARY);
        if (cms)
                len = i2d_CMS_ContentInfo(cms, &der);
        if (len > 0 && len <= KOS_DATAFS_RECOVERY_CMS_MAX && (b64 = malloc(4 * ((size_t)len / 3 + 1) + 1)))
                EVP_EncodeBlock((unsigned char *)b64, der, len);
        OPENSSL_free(der);
        CMS_ContentInfo_free(cms);
        BIO_free(in);
        sk_X509_free(recipients);
        return b64;
}

int kos_datafs_recovery_make(const char *cert_pem_path, int keyslot, char ret_pass[static KOS_DATAFS_RECOVERY_PASS_MAX],
                             char **ret_token_json, struct kos_error *ret_error) {
        uint8_t key[KOS_DATAFS_RECOVERY_KEY_LEN];
        char slot[16];

        X509 *cert = read_cert(cert_pem_path);
        if (!cert)
                return kos_error_set(ret_error, -ENOENT, "no recovery certificate %s", cert_pem_path);
        if (getrandom(key, sizeof key, 0) != sizeof key) {
                int r = kos_error_set(ret_error, -EIO, "getrandom: %m");
                X509_free(cert);
                return r;
        }
        kos_hex_encode(key, sizeof key, ret_pass);
        explicit_bzero(key, sizeof key);
        char *b64 = envelope(cert, ret_pass);
        X509_free(cert);
        if (!b64) {
                explicit_bzero(ret_pass, KOS_DATAFS_RECOVERY_PASS_MAX);
                return kos_error_set(ret_error, -EIO, "CMS encryption to the recovery certificate failed");
        }
        snprintf(slot, sizeof slot, "%d", keyslot);
        json_t *o = json_pack("{s:s, s:[s], s:s, s:s}", "type", KOS_DATAFS_RECOVERY_TOKEN, "keyslots", slot,
                              "kos-cms-cipher", "aes-256-cbc", "kos-cms", b64);
        free(b64);
        *ret_token_json = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!*ret_token_json) {
                explicit_bzero(ret_pass, KOS_DATAFS_RECOVERY_PASS_MAX);
                return -ENOMEM;
        }
        return 0;
}

static EVP_PKEY *read_key(const char *path) {
        FILE *f = fopen(path, "re");
        EVP_PKEY *key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;

        if (f)
                fclose(f);
        return key;
}

/* The CMS's plaintext must be exactly a passphrase of 64 hex digits. */
static int decrypt(const unsigned char *der, long len, EVP_PKEY *key, X509 *cert,
                   char ret_pass[static KOS_DATAFS_RECOVERY_PASS_MAX]) {
        const unsigned char *p = der;
        CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, len);
        BIO *out = BIO_new(BIO_s_mem());
        char *data = NULL;
        int r = -EBADMSG;

        if (cms && out && p == der + len && CMS_decrypt(cms, key, cert, NULL, out, CMS_BINARY) == 1) {
                long n = BIO_get_mem_data(out, &data);
                uint8_t check[KOS_DATAFS_RECOVERY_KEY_LEN];
                if (n == 2 * KOS_DATAFS_RECOVERY_KEY_LEN && kos_hex_decode(data, (size_t)n, check, sizeof check) >= 0) {
                        memcpy(ret_pass, data, (size_t)n);
                        ret_pass[n] = '\0';
                        r = 0;
                }
                explicit_bzero(check, sizeof check);
        } else if (cms && out && p == der + len)
                r = -EACCES;
        CMS_ContentInfo_free(cms);
        BIO_free(out); /* BIO_free of a mem BIO frees its buffer */
        return r;
}

int kos_datafs_recovery_open(const char *untrusted_token_json, const char *key_pem_path, const char *cert_pem_path,
                             char ret_pass[static KOS_DATAFS_RECOVERY_PASS_MAX], int *ret_keyslot,
                             struct kos_error *ret_error) {
        const char *type, *slot, *b64;
        json_t *keyslots;
        unsigned char der[KOS_DATAFS_RECOVERY_CMS_MAX + 3];
        char *end;
        int r = -EBADMSG;

        json_t *o = json_loads(untrusted_token_json, JSON_REJECT_DUPLICATES, NULL);
        if (!o || json_unpack(o, "{s:s, s:o, s:s}", "type", &type, "keyslots", &keyslots, "kos-cms", &b64) < 0 ||
            strcmp(type, KOS_DATAFS_RECOVERY_TOKEN) != 0 || json_array_size(keyslots) != 1 ||
            !(slot = json_string_value(json_array_get(keyslots, 0)))) {
                kos_error_set(ret_error, r, "not a " KOS_DATAFS_RECOVERY_TOKEN " token");
                goto out;
        }
        long n = strtol(slot, &end, 10);
        size_t b64_len = strlen(b64), pad = 0;
        if (*end || end == slot || n < 0 || n > 31 || b64_len == 0 || b64_len % 4 != 0 ||
            b64_len / 4 * 3 > sizeof der) {
                kos_error_set(ret_error, r, "its key slot or CMS is malformed");
                goto out;
        }
        while (pad < 2 && b64[b64_len - 1 - pad] == '=')
                pad++;
        int len = EVP_DecodeBlock(der, (const unsigned char *)b64, (int)b64_len);
        EVP_PKEY *key = read_key(key_pem_path);
        X509 *cert = cert_pem_path ? read_cert(cert_pem_path) : NULL;
        if (len < (int)pad || !key || (cert_pem_path && !cert)) {
                r = kos_error_set(ret_error, len < (int)pad ? -EBADMSG : -ENOENT, "%s",
                                  len < (int)pad ? "its CMS is not base64"
                                  : !key         ? "cannot read the private key"
                                                 : "cannot read the certificate");
        } else if ((r = decrypt(der, len - (long)pad, key, cert, ret_pass)) < 0)
                kos_error_set(ret_error, r, "%s",
                              r == -EACCES ? "the private key does not decrypt its CMS (another recovery certificate?)"
                                           : "its CMS is malformed");
        else
                *ret_keyslot = (int)n;
        EVP_PKEY_free(key);
        X509_free(cert);
out:
        json_decref(o);
        return r;
}
