/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kos.h"

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

int cmd_key_id(int argc, char **argv) {
        _cleanup_free_ char *pem = NULL;
        uint8_t raw[KOS_ED25519_PUBLIC_LEN], id[KOS_KEY_ID_LEN], sig[KOS_ED25519_SIGNATURE_LEN];
        char id_hex[KOS_KEY_ID_HEX_LEN + 1];
        size_t len;
        int r;

        if (wants_help(argc, argv)) {
                printf("Usage: kos key-id KEY.pem\n\nPrints the key id (first 8 bytes of sha256 over the raw\n"
                       "32-byte Ed25519 public key, in hex) of a public or secret PEM key.\n");
                return EXIT_OK;
        }
        if (argc != 2)
                return usage_error("key-id", "expected one PEM file");
        r = read_path(argv[1], KOS_KEY_FILE_MAX, &pem, &len);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot read %s: %s", argv[1], strerror(-r));
        if (kos_key_public_from_pem(pem, len, raw) >= 0) {
                if ((r = kos_key_id_of(raw, id)) < 0)
                        return fail(EXIT_USAGE, "cannot hash the key: %s", strerror(-r));
        } else if (kos_key_sign(pem, len, "", 0, sig, id) < 0)
                return fail(EXIT_USAGE, "%s is not an Ed25519 PEM key", argv[1]);
        kos_hex_encode(id, KOS_KEY_ID_LEN, id_hex);
        printf("%s\n", id_hex);
        return EXIT_OK;
}
