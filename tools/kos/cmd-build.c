/* SPDX-License-Identifier: MIT */
/* kos component build: a directory into a squashfs or erofs image, with
 * optional dm-verity data and optional LUKS2 encryption, on a host without
 * device-mapper. The real work is done by the tools made for it (mksquashfs,
 * mkfs.erofs, veritysetup, cryptsetup), run without a shell. The image's
 * manifest fields are written beside it as IMAGE.meta, which
 * `kos manifest create` reads. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kos.h"

#define LUKS_HEADER_SPACE "16M" /* room cryptsetup moves the data by */

static int add_verity(const char *image, struct kos_verity *ret) {
        struct stat st;
        char offset_arg[64], output[4096];

        if (stat(image, &st) < 0)
                return -errno;
        ret->hash_offset = ((uint64_t)st.st_size + 4095) / 4096 * 4096;
        if (truncate(image, (off_t)ret->hash_offset) < 0)
                return -errno;
        snprintf(offset_arg, sizeof offset_arg, "--hash-offset=%llu", (unsigned long long)ret->hash_offset);
        char *argv[] = {"veritysetup", "format", "--hash=sha256", offset_arg, (char *)image, (char *)image, NULL};
        int r = run_program(argv, output, sizeof output);
        if (r < 0)
                return r;
        const char *line = strstr(output, "Root hash:");
        if (!line)
                return -EBADMSG;
        line += strlen("Root hash:");
        line += strspn(line, " \t");
        if (kos_hex_decode(line, strcspn(line, "\n"), ret->root_hash, KOS_SHA256_LEN) < 0)
                return -EBADMSG;
        ret->enabled = true;
        return 0;
}

/* The key of id in keystore/, made (64 random bytes, 0600) if missing. */
static int ensure_key(const char *keystore, const char *id, char *ret_path, size_t size) {
        uint8_t key[64];

        if ((size_t)snprintf(ret_path, size, "%s/%s", keystore, id) >= size)
                return -ENAMETOOLONG;
        if (access(ret_path, R_OK) == 0)
                return 0;
        if (mkdir(keystore, 0700) < 0 && errno != EEXIST)
                return -errno;
        if (getrandom(key, sizeof key, 0) != sizeof key)
                return -EIO;
        _cleanup_close_ int fd = open(ret_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        int r = kos_write_all(fd, key, sizeof key);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        return r;
}

/* LUKS2 around the image, offline: cryptsetup encrypts the file in place
 * in user space, no device-mapper needed. The key is 512 random bits, so a
 * slow password KDF would only slow the boot: PBKDF2 with few iterations. */
static int encrypt_image(const char *image, const char *key_path) {
        struct stat st;

        if (stat(image, &st) < 0)
                return -errno;
        if (truncate(image, st.st_size + (16 << 20)) < 0)
                return -errno;
        char *argv[] = {"cryptsetup", "reencrypt", "--encrypt", "--type", "luks2", "--pbkdf", "pbkdf2",
                        "--pbkdf-force-iterations", "1000", "--reduce-device-size", LUKS_HEADER_SPACE, "--key-file",
                        (char *)key_path, "--batch-mode", "--disable-locks", (char *)image, NULL};
        return run_program(argv, NULL, 0);
}

static int make_filesystem(enum kos_component_type type, const char *src, const char *out) {
        if (type == KOS_COMPONENT_SQUASHFS) {
                char *argv[] = {"mksquashfs", (char *)src, (char *)out, "-noappend", "-quiet", "-no-progress",
                                "-all-root", "-mkfs-time", "0", "-all-time", "0", NULL};
                return run_program(argv, NULL, 0);
        }
        char *argv[] = {"mkfs.erofs", "-T0", "--all-root", (char *)out, (char *)src, NULL};
        return run_program(argv, NULL, 0);
}

static int write_meta(const char *out, enum kos_component_type type, const struct kos_verity *verity,
                      bool hash_tree, const char *key_id) {
        char path[4096], hex[KOS_SHA256_HEX_LEN + 1];

        json_t *o = json_pack("{s:s}", "type", kos_component_type_to_string(type));
        if (key_id)
                json_object_set_new(o, "encryption", json_pack("{s:s, s:s}", "type", "luks2", "key", key_id));
        if (verity->enabled) {
                kos_hex_encode(verity->root_hash, KOS_SHA256_LEN, hex);
                json_object_set_new(o, "verity", json_pack("{s:s, s:I}", "root_hash", hex, "hash_offset",
                                                           (json_int_t)verity->hash_offset));
        }
        if (hash_tree)
                json_object_set_new(o, "verify", json_string("hash-tree"));
        char *text = json_dumps(o, JSON_INDENT(2));
        json_decref(o);
        if (!text)
                return -ENOMEM;
        snprintf(path, sizeof path, "%s.meta", out);
        int r = kos_write_file_atomic_at(AT_FDCWD, path, text, strlen(text), 0644);
        free(text);
        return r;
}

static int build(enum kos_component_type type, bool verity, bool hash_tree, const char *key_id, const char *keystore, const char *src,
                 const char *out) {
        struct kos_verity v = {0};
        char tmp[4096], key_path[4096];
        int r;

        if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp-%d", out, (int)getpid()) >= sizeof tmp)
                return fail(EXIT_USAGE, "output path too long");
        if ((r = make_filesystem(type, src, tmp)) < 0) {
                unlink(tmp);
                return fail(EXIT_USAGE, "cannot make a %s image of %s", kos_component_type_to_string(type), src);
        }
        if (verity && (r = add_verity(tmp, &v)) < 0) {
                unlink(tmp);
                return fail(EXIT_USAGE, "veritysetup format failed on %s: %s", tmp, strerror(-r));
        }
        if (key_id) {
                if ((r = ensure_key(keystore, key_id, key_path, sizeof key_path)) < 0 ||
                    (r = encrypt_image(tmp, key_path)) < 0) {
                        unlink(tmp);
                        return fail(EXIT_USAGE, "cannot encrypt %s with key %s of %s: %s", out, key_id, keystore,
                                    strerror(-r));
                }
        }
        if (rename(tmp, out) < 0) {
                r = -errno;
                unlink(tmp);
                return fail(EXIT_USAGE, "cannot write %s: %s", out, strerror(-r));
        }
        if ((r = write_meta(out, type, &v, hash_tree, key_id)) < 0)
                return fail(EXIT_USAGE, "cannot write %s.meta: %s", out, strerror(-r));
        printf("%s: %s%s%s%s\n", out, kos_component_type_to_string(type), verity ? ", verity" : "",
               hash_tree ? " (checked by its hash tree)" : "", key_id ? ", LUKS2" : "");
        return EXIT_OK;
}

int cmd_component_build(int argc, char **argv) {
        static const struct option options[] = {
                {"type", required_argument, NULL, 't'},     {"verity", no_argument, NULL, 'v'},
                {"encrypt", required_argument, NULL, 'e'},  {"keystore", required_argument, NULL, 'k'},
                {"hash-tree", no_argument, NULL, 'H'},      {"help", no_argument, NULL, 'h'}, {}};
        const char *key_id = NULL, *keystore = NULL;
        int type = KOS_COMPONENT_SQUASHFS, c;
        bool verity = false, hash_tree = false;

        while ((c = getopt_long(argc, argv, "t:ve:k:Hh", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        printf("Usage: kos component build [--type squashfs|erofs] [--verity [--hash-tree]]\n"
                               "           [--encrypt KEY_ID --keystore DIR] SOURCE_DIR IMAGE\n\n"
                               "Makes IMAGE from SOURCE_DIR (reproducibly: owner root, time 0). With\n"
                               "--verity, a dm-verity hash tree is appended (veritysetup format);\n"
                               "--hash-tree also marks it \"verify\": \"hash-tree\" in IMAGEFS.meta: the\n"
                               "Boot Kernel checks the tree, not every byte (kos manifest create --help).\n"
                               "With --encrypt, the result is wrapped in LUKS2 with the key KEY_ID of\n"
                               "the key store DIR (64 random bytes, made if missing; the System\n"
                               "Kernel's initrd needs the same file). Writes IMAGE.meta, the fields\n"
                               "'kos manifest create --component NAME=IMAGE' puts in the manifest.\n");
                        return EXIT_OK;
                case 't':
                        type = kos_component_type_from_string(optarg);
                        if (type < 0 || type == KOS_COMPONENT_EXT4)
                                return usage_error("component build", "--type is squashfs or erofs");
                        break;
                case 'v':
                        verity = true;
                        break;
                case 'H':
                        hash_tree = true;
                        break;
                case 'e':
                        if (!kos_name_is_valid(optarg))
                                return usage_error("component build", "key id '%s' is not [A-Za-z0-9._-]{1,64}", optarg);
                        key_id = optarg;
                        break;
                case 'k':
                        keystore = optarg;
                        break;
                default:
                        return usage_error("component build", "unknown option");
                }
        }
        if (argc - optind != 2)
                return usage_error("component build", "expected SOURCE_DIR and IMAGE");
        if (key_id && !keystore)
                return usage_error("component build", "--encrypt needs --keystore");
        if (hash_tree && (!verity || key_id))
                return usage_error("component build", "--hash-tree needs --verity and no --encrypt (the Boot Kernel "
                                                      "cannot read a tree inside LUKS2)");
        return build((enum kos_component_type)type, verity, hash_tree, key_id, keystore, argv[optind], argv[optind + 1]);
}
