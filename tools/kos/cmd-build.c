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
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kos.h"
#include "reproducible.h"

/* dm-verity over the first bytes of image, the tree appended. The salt and
 * UUID that veritysetup would draw at random are derived from the SHA-256 of
 * the data instead (docs/format.md, "Reproducible components"): the same data
 * gets the same tree. With salt_from, the salt is derived from that name
 * instead, so it stays the same across versions of a component and so do the
 * digests of the blocks an update did not change. */
static int add_verity(const char *image, const char *salt_from, struct kos_verity *ret) {
        struct stat st;
        uint8_t content[KOS_SHA256_LEN], salt[KOS_VERITY_SALT_LEN];
        char offset_arg[64], salt_arg[16 + 2 * KOS_VERITY_SALT_LEN], uuid[KOS_UUID_STRING_LEN + 1];
        char uuid_arg[16 + KOS_UUID_STRING_LEN], output[4096];

        if (stat(image, &st) < 0)
                return -errno;
        ret->hash_offset = ((uint64_t)st.st_size + 4095) / 4096 * 4096;
        if (truncate(image, (off_t)ret->hash_offset) < 0)
                return -errno;
        int r = kos_file_sha256(image, content);
        if (r < 0)
                return r;
        if (salt_from) {
                uint8_t name_digest[KOS_SHA256_LEN];
                if ((r = kos_sha256(salt_from, strlen(salt_from), name_digest)) < 0)
                        return r;
                kos_derive_from_content("kos-verity-salt-from-name-v1", name_digest, salt, sizeof salt);
        } else
                kos_derive_from_content("kos-verity-salt-v1", content, salt, sizeof salt);
        memcpy(salt_arg, "--salt=", 7);
        kos_hex_encode(salt, sizeof salt, salt_arg + 7);
        kos_derive_uuid("kos-verity-uuid-v1", content, uuid);
        snprintf(uuid_arg, sizeof uuid_arg, "--uuid=%s", uuid);
        snprintf(offset_arg, sizeof offset_arg, "--hash-offset=%llu", (unsigned long long)ret->hash_offset);
        char *argv[] = {"veritysetup", "format", "--hash=sha256", "--data-block-size=4096", "--hash-block-size=4096",
                        salt_arg, uuid_arg, offset_arg, (char *)image, (char *)image, NULL};
        r = run_program(argv, output, sizeof output);
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

/* The smallest LUKS2 header that keeps one keyslot of a 512-bit key through
 * an offline encryption: two 16 KiB metadata copies and a 256 KiB keyslot
 * area (the keyslot's 4000 anti-forensic stripes take 252 KiB, and
 * cryptsetup reencrypt needs the rest for its own bookkeeping: 252 KiB fails
 * with "Failed to initialize LUKS2 reencryption in metadata"). The data
 * starts right after it. */
#define LUKS_METADATA_SIZE "16k"
#define LUKS_KEYSLOTS_SIZE "256k"
#define LUKS_HEADER_BYTES (2 * 16384 + 262144)

/* The volume key of key_path in a memory file that cryptsetup, our child,
 * inherits and reads as /proc/self/fd/N (--volume-key-file): the key never
 * reaches a disk, and a read-only key store still works. Returns the fd (no
 * O_CLOEXEC, on purpose: close it right after the one cryptsetup run) or a
 * negative errno. */
static int volume_key_memfd(const char *key_path) {
        uint8_t vk[KOS_VOLUME_KEY_LEN];
        int r = kos_derive_volume_key(key_path, vk);
        if (r < 0)
                return r;
        int fd = memfd_create("kos-volume-key", 0);
        if (fd < 0)
                r = -errno;
        else if ((r = kos_write_all(fd, vk, sizeof vk)) < 0) {
                close(fd);
                fd = -1;
        }
        explicit_bzero(vk, sizeof vk);
        return fd >= 0 ? fd : r;
}

/* plain's bytes into a new file out, starting at byte offset of it. */
static int copy_at(const char *plain, const char *out, off_t offset) {
        struct stat st;
        _cleanup_close_ int in = kos_open_regular_at(AT_FDCWD, plain, O_RDONLY | O_NOFOLLOW, &st);
        if (in < 0)
                return in;
        _cleanup_close_ int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        off_t in_pos = 0, out_pos = offset;
        while (in_pos < st.st_size) {
                ssize_t n = copy_file_range(in, &in_pos, fd, &out_pos, (size_t)(st.st_size - in_pos), 0);
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EIO; /* the file shrank under us */
        }
        return 0;
}

/* The detached header file cryptsetup wrote, into the first
 * LUKS_HEADER_BYTES of image, where its data offset expects it. */
static int attach_header(const char *header, const char *image) {
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int r = kos_read_file_at(AT_FDCWD, header, LUKS_HEADER_BYTES, &data, &len);
        if (r < 0)
                return r;
        if (len != LUKS_HEADER_BYTES)
                return -EBADMSG;
        _cleanup_close_ int fd = open(image, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if ((r = kos_write_all(fd, data, len)) < 0)
                return r;
        return fsync(fd) < 0 ? -errno : 0;
}

/* Runs cryptsetup with its output read back (up to 64 KiB) and passed on
 * to our standard error without the warning that the keyslot area is small: it
 * is small on purpose (one keyslot), and the warning would only alarm the
 * vendor on every build. 0, -ECHILD when cryptsetup fails, or -errno. */
static int run_cryptsetup(char *const argv[]) {
        static const char expected[] = "is very small, available LUKS2 keyslot count is very limited";
        char text[65536];
        size_t len = 0;
        int pipefd[2], status;
        ssize_t n;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0) {
                close(pipefd[0]);
                close(pipefd[1]);
                return -errno;
        }
        if (pid == 0) {
                /* cryptsetup prints its warnings on standard output. */
                dup2(pipefd[1], STDOUT_FILENO);
                dup2(pipefd[1], STDERR_FILENO);
                execvp(argv[0], argv);
                dprintf(STDERR_FILENO, "kos: cannot run %s: %m\n", argv[0]);
                _exit(127);
        }
        close(pipefd[1]);
        while ((n = read(pipefd[0], text + len, sizeof text - 1 - len)) > 0 && (len += (size_t)n) < sizeof text - 1)
                ;
        text[len] = '\0';
        /* Whatever did not fit is drained, so cryptsetup never blocks on us. */
        char drain[4096];
        while (n > 0 && (n = read(pipefd[0], drain, sizeof drain)) > 0)
                ;
        close(pipefd[0]);
        for (char *line = text, *end; *line; line = end) {
                end = line + strcspn(line, "\n");
                if (*end)
                        end++;
                if (!memmem(line, (size_t)(end - line), expected, sizeof expected - 1))
                        fwrite(line, 1, (size_t)(end - line), stderr);
        }
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

/* LUKS2 around the image, offline and in user space (no device-mapper on a
 * build host): the plain image is copied to byte LUKS_HEADER_BYTES of a new
 * file, cryptsetup reencrypt --encrypt encrypts it in place there with a
 * detached header whose data offset is that byte, and the header is then
 * written in front. Cipher, key size, sector size and the volume key
 * (derived from the key store's key, not drawn at random) are pinned, so the
 * data area is the same for the same plain image and key: only the header
 * (keyslot salt, anti-forensic stripes, UUID) differs from build to build.
 * The key is 512 random bits, so a slow password KDF would only slow the
 * boot: PBKDF2 with few iterations. Replaces image on success. */
static int encrypt_image(const char *image, const char *key_path) {
        char vk_path[64], header[4096], out[4096], offset_arg[32];

        if ((size_t)snprintf(header, sizeof header, "%s.luks-header", image) >= sizeof header ||
            (size_t)snprintf(out, sizeof out, "%s.luks", image) >= sizeof out)
                return -ENAMETOOLONG;
        snprintf(offset_arg, sizeof offset_arg, "%d", LUKS_HEADER_BYTES / 512);
        (void)unlink(header);
        (void)unlink(out);
        _cleanup_close_ int vk_fd = volume_key_memfd(key_path);
        if (vk_fd < 0)
                return vk_fd;
        snprintf(vk_path, sizeof vk_path, "/proc/self/fd/%d", vk_fd);
        int r = copy_at(image, out, LUKS_HEADER_BYTES);
        if (r == 0) {
                char *argv[] = {"cryptsetup", "reencrypt", "--encrypt", "--type", "luks2", "--cipher", "aes-xts-plain64",
                                "--key-size", "512", "--sector-size", "512", "--pbkdf", "pbkdf2",
                                "--pbkdf-force-iterations", "1000", "--luks2-metadata-size", LUKS_METADATA_SIZE,
                                "--luks2-keyslots-size", LUKS_KEYSLOTS_SIZE, "--header", header, "--offset", offset_arg,
                                "--volume-key-file", vk_path, "--key-file", (char *)key_path, "--batch-mode",
                                "--disable-locks", out, NULL};
                r = run_cryptsetup(argv);
        }
        if (r == 0)
                r = attach_header(header, out);
        (void)unlink(header);
        if (r == 0 && rename(out, image) < 0)
                r = -errno;
        if (r < 0)
                (void)unlink(out);
        return r;
}

/* mkfs.erofs for out, with uuid (NULL: the nil UUID). */
static int make_erofs(const char *src, const char *out, const char *uuid) {
        char uuid_arg[8 + KOS_UUID_STRING_LEN];

        snprintf(uuid_arg, sizeof uuid_arg, "-U%s", uuid ? uuid : "00000000-0000-0000-0000-000000000000");
        (void)unlink(out);
        char *argv[] = {"mkfs.erofs", "-T0", "--all-root", "--quiet", uuid_arg, (char *)out, (char *)src, NULL};
        return run_program(argv, NULL, 0);
}

/* Both file systems are built with every owner root and every time 0, so
 * the source's owners and times (and the order readdir returns names in)
 * never reach the image; mode, names, contents, links and extended
 * attributes do. mksquashfs is reproducible by default (-reproducible) and
 * has no UUID. mkfs.erofs draws a random UUID unless given one: it is built
 * once with the nil UUID, and again with a UUID derived from that image's
 * SHA-256, so the UUID too is a function of the content. */
static int make_filesystem(enum kos_component_type type, const char *src, const char *out) {
        if (type == KOS_COMPONENT_SQUASHFS) {
                char *argv[] = {"mksquashfs", (char *)src, (char *)out, "-noappend", "-quiet", "-no-progress",
                                "-reproducible", "-all-root", "-mkfs-time", "0", "-all-time", "0", NULL};
                return run_program(argv, NULL, 0);
        }
        uint8_t content[KOS_SHA256_LEN];
        char uuid[KOS_UUID_STRING_LEN + 1];
        int r = make_erofs(src, out, NULL);
        if (r < 0)
                return r;
        if ((r = kos_file_sha256(out, content)) < 0)
                return r;
        kos_derive_uuid("kos-erofs-uuid-v1", content, uuid);
        return make_erofs(src, out, uuid);
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

struct build_options {
        enum kos_component_type type;
        bool verity, hash_tree;
        const char *salt_from; /* --verity-salt-from, or NULL */
        const char *key_id, *keystore;
};

static int build(const struct build_options *o, const char *src, const char *out) {
        enum kos_component_type type = o->type;
        bool verity = o->verity, hash_tree = o->hash_tree;
        const char *key_id = o->key_id, *keystore = o->keystore;
        struct kos_verity v = {0};
        char tmp[4096], key_path[4096];
        int r;

        if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp-%d", out, (int)getpid()) >= sizeof tmp)
                return fail(EXIT_USAGE, "output path too long");
        if ((r = make_filesystem(type, src, tmp)) < 0) {
                unlink(tmp);
                return fail(EXIT_USAGE, "cannot make a %s image of %s", kos_component_type_to_string(type), src);
        }
        if (verity && (r = add_verity(tmp, o->salt_from, &v)) < 0) {
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
                {"hash-tree", no_argument, NULL, 'H'},      {"verity-salt-from", required_argument, NULL, 'S'},
                {"help", no_argument, NULL, 'h'},           {}};
        const char *key_id = NULL, *keystore = NULL, *salt_from = NULL;
        int type = KOS_COMPONENT_SQUASHFS, c;
        bool verity = false, hash_tree = false;

        while ((c = getopt_long(argc, argv, "t:ve:k:S:Hh", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        printf("Usage: kos component build [--type squashfs|erofs]\n"
                               "           [--verity [--hash-tree] [--verity-salt-from NAME]]\n"
                               "           [--encrypt KEY_ID --keystore DIR] SOURCE_DIR IMAGE\n\n"
                               "Makes IMAGE from SOURCE_DIR, reproducibly: owner root, time 0, and UUIDs,\n"
                               "the verity salt and the LUKS2 volume key derived, never random. With\n"
                               "--verity, a dm-verity hash tree is appended (veritysetup format);\n"
                               "--hash-tree also marks it \"verify\": \"hash-tree\" in IMAGEFS.meta: the\n"
                               "Boot Kernel checks the tree, not every byte (kos manifest create --help).\n"
                               "The verity salt is derived from the data, or with --verity-salt-from from\n"
                               "NAME (the component's name: the same salt in every version, so an update\n"
                               "changes only the digests of the blocks it changed).\n"
                               "With --encrypt, the result is wrapped in LUKS2 (a 288 KiB header) with\n"
                               "the key KEY_ID of the key store DIR (64 random bytes, made if missing;\n"
                               "the System Kernel's initrd needs the same file). Writes IMAGE.meta, the fields\n"
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
                case 'S':
                        if (!kos_name_is_valid(optarg))
                                return usage_error("component build", "salt name '%s' is not [A-Za-z0-9._-]{1,64}", optarg);
                        salt_from = optarg;
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
        if (salt_from && !verity)
                return usage_error("component build", "--verity-salt-from needs --verity");
        struct build_options o = {.type = (enum kos_component_type)type, .verity = verity, .hash_tree = hash_tree,
                                  .salt_from = salt_from, .key_id = key_id, .keystore = keystore};
        return build(&o, argv[optind], argv[optind + 1]);
}
