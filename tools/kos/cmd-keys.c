/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kos.h"
#include "signing-key.h"

#ifdef KOS_WITH_HOST
#include "pkcs11-sign.h"
#define key_is_pkcs11(key) kos_pkcs11_uri_is(key)
#else
/* The device's kos is built without lib/host/: keys in an HSM sign on a
 * vendor's host. A PKCS#11 URI is still recognized, so that it is refused
 * and never read as a path (its query may hold a PIN). */
static bool key_is_pkcs11(const char *key) {
        return strncasecmp(key, "pkcs11:", 7) == 0;
}
#define NO_PKCS11 "this kos is the device's, built without PKCS#11 (lib/host/): use kos on the signing host"
#endif

/* What a message shows of a --key argument (kos_redact_pin_values()). */
#define KOS_KEY_SHOWN_MAX 4097

static int write_new_file(const char *path, const char *data, mode_t mode, bool force) {
        int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (force ? O_TRUNC : O_EXCL);
        _cleanup_close_ int fd = open(path, flags, mode);

        if (fd < 0)
                return -errno;
        int r = kos_write_all(fd, data, strlen(data));
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        return r;
}

int cmd_keygen(int argc, char **argv) {
        static const struct option options[] = {{"force", no_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {}};
        _cleanup_free_ char *secret = NULL, *public = NULL;
        uint8_t id[KOS_KEY_ID_LEN];
        char id_hex[KOS_KEY_ID_HEX_LEN + 1];
        bool force = false;
        int c, r;

        while ((c = getopt_long(argc, argv, "fh", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: kos keygen [--force] SECRET.pem PUBLIC.pem\n\n"
                               "Generates an Ed25519 key pair as openssl genpkey would: the secret key\n"
                               "(PKCS#8 PEM, mode 0600) and its public key (SubjectPublicKeyInfo PEM).\n"
                               "Prints the key id. Existing files are kept unless --force.\n");
                        return EXIT_OK;
                }
                if (c == 'f')
                        force = true;
                else
                        return usage_error("keygen", "unknown option");
        }
        if (argc - optind != 2)
                return usage_error("keygen", "expected SECRET.pem and PUBLIC.pem");
        r = kos_key_generate(&secret, &public, id);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot generate a key: %s", strerror(-r));
        r = write_new_file(argv[optind], secret, 0600, force);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot write %s: %s%s", argv[optind], strerror(-r),
                            r == -EEXIST ? " (use --force to replace it)" : "");
        r = write_new_file(argv[optind + 1], public, 0644, force);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot write %s: %s%s", argv[optind + 1], strerror(-r),
                            r == -EEXIST ? " (use --force to replace it)" : "");
        kos_hex_encode(id, KOS_KEY_ID_LEN, id_hex);
        printf("%s\n", id_hex);
        return EXIT_OK;
}

int signing_key_public_pkcs11(const char *uri, const char *pkcs11_module, uint8_t ret_raw[static KOS_ED25519_PUBLIC_LEN]) {
#ifndef KOS_WITH_HOST
        return fail(EXIT_USAGE, NO_PKCS11);
#else
        struct kos_pkcs11_uri u;
        struct kos_error error = KOS_ERROR_NULL;
        int r = kos_pkcs11_uri_parse(uri, &u, &error);

        if (r >= 0)
                r = kos_pkcs11_public_key(&u, kos_pkcs11_module_choose(&u, pkcs11_module), ret_raw, &error);
        kos_pkcs11_uri_done(&u);
        return r < 0 ? fail(EXIT_USAGE, "%s", error.msg) : EXIT_OK;
#endif
}

static int sign_pkcs11(const char *key, const char *pkcs11_module, const void *message, size_t len,
                       uint8_t ret_signature[static KOS_ED25519_SIGNATURE_LEN], uint8_t ret_id[static KOS_KEY_ID_LEN]) {
#ifndef KOS_WITH_HOST
        return fail(EXIT_USAGE, NO_PKCS11);
#else
        struct kos_pkcs11_uri u;
        struct kos_error error = KOS_ERROR_NULL;
        int r = kos_pkcs11_uri_parse(key, &u, &error);

        if (r >= 0)
                r = kos_pkcs11_sign(&u, kos_pkcs11_module_choose(&u, pkcs11_module), message, len, ret_signature, ret_id,
                                    &error);
        kos_pkcs11_uri_done(&u);
        return r < 0 ? fail(EXIT_USAGE, "%s", error.msg) : EXIT_OK;
#endif
}

int signing_key_sign(const char *key, const char *pkcs11_module, const void *message, size_t len,
                     uint8_t ret_signature[static KOS_ED25519_SIGNATURE_LEN], uint8_t ret_id[static KOS_KEY_ID_LEN]) {
        _cleanup_free_ char *secret = NULL;
        size_t secret_len;
        char shown[KOS_KEY_SHOWN_MAX];
        int r;

        if (key_is_pkcs11(key))
                return sign_pkcs11(key, pkcs11_module, message, len, ret_signature, ret_id);
        /* A file, or a URI mistyped: no message shows a PIN it may hold. */
        kos_redact_pin_values(key, shown, sizeof shown);
        if ((r = read_path(key, KOS_KEY_FILE_MAX, &secret, &secret_len)) < 0)
                return fail(EXIT_USAGE, "cannot read %s: %s", shown, strerror(-r));
        r = kos_key_sign(secret, secret_len, message, len, ret_signature, ret_id);
        explicit_bzero(secret, secret_len);
        if (r < 0)
                return fail(EXIT_USAGE, "%s is not an Ed25519 secret key in PEM form", shown);
        return EXIT_OK;
}

static int key_id_pkcs11(const char *uri, const char *module, uint8_t ret_id[static KOS_KEY_ID_LEN]) {
        uint8_t raw[KOS_ED25519_PUBLIC_LEN];
        int code = signing_key_public_pkcs11(uri, module, raw);

        if (code != EXIT_OK)
                return code;
        int r = kos_key_id_of(raw, ret_id);
        return r < 0 ? fail(EXIT_USAGE, "cannot hash the key: %s", strerror(-r)) : EXIT_OK;
}

static const struct option pkcs11_options[] = {
        {"pkcs11-module", required_argument, NULL, 'm'}, {"force", no_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {}};

int cmd_key_id(int argc, char **argv) {
        _cleanup_free_ char *pem = NULL;
        uint8_t raw[KOS_ED25519_PUBLIC_LEN], id[KOS_KEY_ID_LEN], sig[KOS_ED25519_SIGNATURE_LEN];
        char id_hex[KOS_KEY_ID_HEX_LEN + 1], shown[KOS_KEY_SHOWN_MAX];
        const char *module = NULL;
        size_t len;
        int c, r;

        while ((c = getopt_long(argc, argv, "m:h", pkcs11_options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: kos key-id [--pkcs11-module PATH] KEY\n\nPrints the key id (first 8 bytes of sha256 over the raw\n"
                               "32-byte Ed25519 public key, in hex) of a public or secret PEM key, or of\n"
                               "the key a PKCS#11 URI names ('pkcs11:token=...;object=...', read from\n"
                               "its public key object).\n");
                        return EXIT_OK;
                }
                if (c != 'm')
                        return usage_error("key-id", "unknown option");
                module = optarg;
        }
        if (argc - optind != 1)
                return usage_error("key-id", "expected one PEM file or PKCS#11 URI");
        const char *key = argv[optind];
        if (key_is_pkcs11(key)) {
                if ((r = key_id_pkcs11(key, module, id)) != EXIT_OK)
                        return r;
        } else {
                kos_redact_pin_values(key, shown, sizeof shown);
                r = read_path(key, KOS_KEY_FILE_MAX, &pem, &len);
                if (r < 0)
                        return fail(EXIT_USAGE, "cannot read %s: %s", shown, strerror(-r));
                if (kos_key_public_from_pem(pem, len, raw) >= 0) {
                        if ((r = kos_key_id_of(raw, id)) < 0)
                                return fail(EXIT_USAGE, "cannot hash the key: %s", strerror(-r));
                } else if (kos_key_sign(pem, len, "", 0, sig, id) < 0)
                        return fail(EXIT_USAGE, "%s is not an Ed25519 PEM key", shown);
        }
        kos_hex_encode(id, KOS_KEY_ID_LEN, id_hex);
        printf("%s\n", id_hex);
        return EXIT_OK;
}

/* kos key export-public: the public half of an HSM key as PEM, for a keyring. */
int cmd_key_export_public(int argc, char **argv) {
        _cleanup_free_ char *pem = NULL;
        uint8_t raw[KOS_ED25519_PUBLIC_LEN], id[KOS_KEY_ID_LEN];
        char id_hex[KOS_KEY_ID_HEX_LEN + 1];
        const char *module = NULL;
        bool force = false;
        int c, r;

        while ((c = getopt_long(argc, argv, "m:fh", pkcs11_options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: kos key export-public [--pkcs11-module PATH] [--force] 'pkcs11:...' PUBLIC.pem\n\n"
                               "Writes the Ed25519 public key of the key the PKCS#11 URI names as a\n"
                               "SubjectPublicKeyInfo PEM file, ready for a keyring directory, and\n"
                               "prints its key id. An existing file is kept unless --force.\n");
                        return EXIT_OK;
                }
                if (c == 'm')
                        module = optarg;
                else if (c == 'f')
                        force = true;
                else
                        return usage_error("key export-public", "unknown option");
        }
        if (argc - optind != 2 || !key_is_pkcs11(argv[optind]))
                return usage_error("key export-public", "expected a PKCS#11 URI and PUBLIC.pem");
        if ((r = signing_key_public_pkcs11(argv[optind], module, raw)) != EXIT_OK)
                return r;
        if ((r = kos_key_public_to_pem(raw, &pem)) < 0 || (r = kos_key_id_of(raw, id)) < 0)
                return fail(EXIT_USAGE, "cannot encode the public key: %s", strerror(-r));
        r = write_new_file(argv[optind + 1], pem, 0644, force);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot write %s: %s%s", argv[optind + 1], strerror(-r),
                            r == -EEXIST ? " (use --force to replace it)" : "");
        kos_hex_encode(id, KOS_KEY_ID_LEN, id_hex);
        printf("%s\n", id_hex);
        return EXIT_OK;
}
