/* SPDX-License-Identifier: MIT */
/* kos manifest create | sign | verify | show */
#include <blkid/blkid.h>
#include <jansson.h>
#include <unistd.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "dbx.h"
#include "kos.h"
#include "signature.h"
#include "signing-key.h"
#include "uki.h"
#include "verify.h"
#include "verity.h"

/* The filesystem type of an image file, as libblkid sees it. */
static int detect_type(const char *path, enum kos_component_type *ret) {
        const char *value = NULL;
        int r = -EMEDIUMTYPE;

        blkid_probe pr = blkid_new_probe_from_filename(path);
        if (!pr)
                return -errno ? -errno : -EIO;
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
        if (blkid_do_safeprobe(pr) == 0 && blkid_probe_lookup_value(pr, "TYPE", &value, NULL) == 0) {
                int t = kos_component_type_from_string(value);
                if (t >= 0) {
                        *ret = (enum kos_component_type)t;
                        r = 0;
                }
        }
        blkid_free_probe(pr);
        return r;
}

struct input {
        const char *path;
        const char *label;
        struct kos_blob *blob;
};

/* Hashes all inputs in parallel and fills in their blobs. */
static int hash_inputs(struct input *inputs, size_t n) {
        struct kos_hash_job jobs[KOS_MANIFEST_MAX_BLOBS];
        struct progress p;
        int code = EXIT_OK;
        size_t opened = 0;

        for (; opened < n; opened++) {
                struct stat st;
                int fd = kos_open_regular_at(AT_FDCWD, inputs[opened].path, 0, &st);
                if (fd < 0) {
                        code = fail(EXIT_USAGE, "%s: cannot read %s: %s", inputs[opened].label, inputs[opened].path,
                                    file_error_string(fd));
                        break;
                }
                jobs[opened] = (struct kos_hash_job){.fd = fd, .size = (uint64_t)st.st_size, .copy_fd = -1, .compute_only = true};
        }
        if (code == EXIT_OK) {
                progress_init(&p, "hashing");
                int r = kos_hash_jobs(jobs, n, progress_print, &p);
                progress_finish(&p);
                for (size_t i = 0; i < n && code == EXIT_OK; i++) {
                        if (r < 0 || jobs[i].status != KOS_HASH_MATCH)
                                code = fail(EXIT_USAGE, "cannot hash %s (it changed or could not be read)", inputs[i].path);
                        memcpy(inputs[i].blob->sha256, jobs[i].digest, KOS_SHA256_LEN);
                        inputs[i].blob->size = jobs[i].size;
                }
        }
        for (size_t i = 0; i < opened; i++)
                close(jobs[i].fd);
        return code;
}

/* FILE.meta, written by `kos component build`: type, encryption, verity,
 * and "verify": "hash-tree" when it was asked for there. */
static int read_meta(const char *path, struct kos_component *c, bool *ret_found) {
        char meta[4096];
        json_error_t jerr;
        const char *type = NULL, *key = NULL, *root_hash = NULL, *verify = NULL;
        json_int_t hash_offset = 0;

        *ret_found = false;
        if ((size_t)snprintf(meta, sizeof meta, "%s.meta", path) >= sizeof meta || access(meta, F_OK) < 0)
                return 0;
        json_t *o = json_load_file(meta, JSON_REJECT_DUPLICATES, &jerr);
        if (!o || json_unpack(o, "{s:s, s?{s:s}, s?{s:s, s:I}, s?s}", "type", &type, "encryption", "key", &key, "verity",
                              "root_hash", &root_hash, "hash_offset", &hash_offset, "verify", &verify) < 0 ||
            (verify && strcmp(verify, "sha256") != 0 && strcmp(verify, "hash-tree") != 0) ||
            kos_component_type_from_string(type) < 0 || (key && !kos_name_is_valid(key)) ||
            (root_hash && kos_hex_decode(root_hash, strlen(root_hash), c->verity.root_hash, KOS_SHA256_LEN) < 0)) {
                json_decref(o);
                return fail(EXIT_USAGE, "%s is not a component description written by 'kos component build'", meta);
        }
        c->type = (enum kos_component_type)kos_component_type_from_string(type);
        if (key) {
                c->encryption.enabled = true;
                strcpy(c->encryption.key, key);
        }
        if (root_hash) {
                c->verity.enabled = true;
                c->verity.hash_offset = (uint64_t)hash_offset;
        }
        if (verify && strcmp(verify, "hash-tree") == 0)
                c->verify = KOS_VERIFY_HASH_TREE;
        json_decref(o);
        *ret_found = true;
        return EXIT_OK;
}

/* NAME=FILE or NAME=FILE:TYPE; without TYPE it comes from FILE.meta or is detected. */
static int parse_component_arg(char *arg, struct kos_component *c, const char **ret_path) {
        bool found;
        char *eq = strchr(arg, '=');
        int r;

        /* No encryption and no verity unless FILE.meta says so. */
        *c = (struct kos_component){0};
        if (!eq)
                return usage_error("manifest create", "--component takes NAME=FILE[:TYPE], not '%s'", arg);
        *eq = '\0';
        if (!kos_name_is_valid(arg))
                return usage_error("manifest create", "component name '%s' is not [A-Za-z0-9._-]{1,64}", arg);
        strcpy(c->name, arg);
        char *colon = strrchr(eq + 1, ':');
        if ((r = read_meta(eq + 1, c, &found)) != EXIT_OK)
                return r;
        if (found)
                ;
        else if (colon && kos_component_type_from_string(colon + 1) >= 0) {
                *colon = '\0';
                c->type = (enum kos_component_type)kos_component_type_from_string(colon + 1);
        } else if ((r = detect_type(eq + 1, &c->type)) < 0)
                return fail(EXIT_USAGE, "component %s: %s is not a squashfs, erofs or ext4 image (or give :TYPE)", arg, eq + 1);
        *ret_path = eq + 1;
        return EXIT_OK;
}

/* What the System Kernel will map: the superblock of each unencrypted
 * verity component, checked as it checks it (lib/boot/verity.h), before a
 * manifest that could only cost a boot at 'open dm-verity' is written. Done
 * first, so that a hash-tree image with sha512, 1024-byte blocks or no
 * superblock is refused for that, not for a size that follows from it. An
 * encrypted image's superblock is inside LUKS2: the System Kernel alone
 * reads it. inputs[2 + i] is component i. */
static int check_verity_superblocks(const struct kos_manifest *m, const struct input *inputs) {
        uint8_t salt[KOS_VERITY_MAX_SALT];
        struct kos_error error = KOS_ERROR_NULL;
        size_t salt_size;

        for (size_t i = 0; i < m->n_components; i++) {
                const struct kos_component *c = &m->components[i];
                const char *path = inputs[2 + i].path;
                if (!c->verity.enabled || c->encryption.enabled)
                        continue;
                _cleanup_close_ int fd = kos_open_regular_at(AT_FDCWD, path, 0, NULL);
                if (fd < 0)
                        return fail(EXIT_USAGE, "%s: cannot read %s: %s", c->name, path, file_error_string(fd));
                int r = kos_verity_read_superblock(fd, c->verity.hash_offset, salt, &salt_size, &error);
                if (r == -EBADMSG)
                        return fail(EXIT_USAGE, "component %s: %s: %s: %s (the System Kernel would refuse it at "
                                    "'open dm-verity'; kos component build --verity writes what it accepts)",
                                    c->name, path, kos_reason_to_string(KOS_REASON_VERITY_SUPERBLOCK_MISMATCH), error.msg);
                if (r < 0)
                        return fail(EXIT_USAGE, "component %s: %s: %s", c->name, path, error.msg);
        }
        return EXIT_OK;
}

/* --hash-tree NAME: the vendor's choice, per component. */
static int mark_hash_tree(struct kos_manifest *m, const char *const *names, size_t n) {
        for (size_t i = 0; i < n; i++) {
                struct kos_component *c = NULL;
                for (size_t j = 0; j < m->n_components && !c; j++)
                        if (strcmp(m->components[j].name, names[i]) == 0)
                                c = &m->components[j];
                if (!c)
                        return usage_error("manifest create", "--hash-tree %s: no --component of that name", names[i]);
                if (!c->verity.enabled || c->encryption.enabled)
                        return usage_error("manifest create",
                                           "--hash-tree %s: the component needs verity data and no encryption "
                                           "(kos component build --verity, without --encrypt)", names[i]);
                c->verify = KOS_VERIFY_HASH_TREE;
        }
        return EXIT_OK;
}

/* --boot-kernel UKI: its security version comes from its own signed
 * command line (kos mkboot --security-version), so the manifest and the
 * UKI cannot disagree; a UKI without one would measure nothing into PCR 14
 * and check no floor, so it is refused. */
static int add_boot_kernel(const char *path, struct kos_manifest *m, struct input *ret_input) {
        _cleanup_close_ int fd = kos_open_regular_at(AT_FDCWD, path, O_NOFOLLOW, NULL);
        int r;

        if (fd < 0)
                return fail(EXIT_USAGE, "boot-kernel: cannot read %s: %s", path, file_error_string(fd));
        r = kos_uki_security_version(fd, &m->boot_kernel.security_version);
        if (r == -ENOENT)
                return fail(EXIT_USAGE, "boot-kernel: %s has no " KOS_BK_SECURITY_VERSION_PARAM "=N in its .cmdline "
                            "(build it with kos mkboot --uki --security-version N)", path);
        if (r < 0)
                return fail(EXIT_USAGE, "boot-kernel: %s: %s", path,
                            r == -ENOEXEC ? "not a UKI (PE image)" : r == -EINVAL ? "malformed " KOS_BK_SECURITY_VERSION_PARAM : strerror(-r));
        m->boot_kernel.present = true;
        *ret_input = (struct input){path, "boot-kernel", &m->boot_kernel.blob};
        return EXIT_OK;
}

/* --dbx-update AUTH: a KEK-signed dbx append (kos dbx create); one the
 * device's check could never accept (not an authenticated append of
 * signature lists, or an entry type it cannot compare) is refused here
 * rather than on every device. */
static int add_dbx_update(const char *path, struct kos_manifest *m, struct input *ret_input) {
        _cleanup_close_ int fd = kos_open_regular_at(AT_FDCWD, path, O_NOFOLLOW, NULL);
        static uint8_t auth[KOS_DBX_UPDATE_SIZE_MAX + 1];
        struct kos_error detail;

        if (fd < 0)
                return fail(EXIT_USAGE, "dbx-update: cannot read %s: %s", path, file_error_string(fd));
        ssize_t n = read(fd, auth, sizeof auth);
        if (n <= 0 || n > KOS_DBX_UPDATE_SIZE_MAX)
                return fail(EXIT_USAGE, "dbx-update: %s: %s", path,
                            n < 0 ? strerror(errno) : n == 0 ? "empty" : "larger than 1 MiB");
        enum kos_dbx_verdict v = kos_dbx_check_update(auth, (size_t)n, NULL, 0, &detail);
        if (v != KOS_DBX_SAFE)
                return fail(EXIT_USAGE, "dbx-update: %s: %s: %s", path, kos_dbx_verdict_to_string(v), detail.msg);
        m->dbx_update.present = true;
        *ret_input = (struct input){path, "dbx-update", &m->dbx_update.blob};
        return EXIT_OK;
}

static int print_create_help(void) {
        printf("Usage: kos manifest create --name NAME --version N --kernel FILE --initrd FILE\n"
               "           [--security-version N] [--cmdline TEXT] --component NAME=FILE[:TYPE]...\n"
               "           [--hash-tree NAME]... [--boot-kernel UKI] [--dbx-update AUTH] [--output FILE]\n\n"
               "Writes a manifest (JSON, format 1) for the given System Kernel, initrd and\n"
               "components, bottom layer first. Sizes and sha256 are read from the files;\n"
               "TYPE (squashfs, erofs, ext4) is detected with libblkid when not given;\n"
               "when FILE.meta exists (from 'kos component build') its type, encryption\n"
               "and verity fields are used. --security-version N (0 to 4294967295, default\n"
               "0) is the anti-rollback level: raise it only for a release that fixes\n"
               "something an attacker could use; once a device marks it good, releases\n"
               "below it never boot there again.\n"
               "--hash-tree NAME: the Boot Kernel checks component NAME by its dm-verity\n"
               "hash tree (about 1/128 of the image) up to the signed root hash instead\n"
               "of hashing every byte; dm-verity checks the data as it is read and\n"
               "restarts the device on a corrupt block. NAME needs verity data and no\n"
               "encryption (kos component build --verity). Default: sha256 of every byte.\n"
               "--boot-kernel UKI: the release also carries this signed Boot Kernel UKI\n"
               "(\"boot_kernel\" in the manifest), which devices install into their idle\n"
               "ESP slot; its security version is read from its command line (kos mkboot\n"
               "--security-version N), and a UKI without one is refused.\n"
               "--dbx-update AUTH: the release also carries this KEK-signed dbx append (kos\n"
               "dbx create; \"dbx_update\" in the manifest), which devices apply once the\n"
               "release's boot is marked good, unless it would revoke a UKI they need.\n"
               "Writes to standard output unless --output.\n");
        return EXIT_OK;
}

static int manifest_create(int argc, char **argv) {
        static const struct option options[] = {
                {"name", required_argument, NULL, 'n'},   {"version", required_argument, NULL, 'v'},
                {"kernel", required_argument, NULL, 'k'}, {"initrd", required_argument, NULL, 'i'},
                {"cmdline", required_argument, NULL, 'c'}, {"component", required_argument, NULL, 'C'},
                {"output", required_argument, NULL, 'o'}, {"security-version", required_argument, NULL, 's'},
                {"hash-tree", required_argument, NULL, 't'}, {"boot-kernel", required_argument, NULL, 'b'},
                {"dbx-update", required_argument, NULL, 'x'}, {"help", no_argument, NULL, 'h'}, {}};
        struct kos_component components[KOS_MANIFEST_MAX_COMPONENTS];
        const char *hash_tree[KOS_MANIFEST_MAX_COMPONENTS];
        size_t n_hash_tree = 0;
        struct kos_manifest m = {.format = KOS_MANIFEST_FORMAT, .cmdline = (char *)"", .components = components};
        struct input inputs[KOS_MANIFEST_MAX_BLOBS] = {
                {NULL, "kernel", &m.kernel},
                {NULL, "initrd", &m.initrd},
        };
        const char *output = NULL, *version = NULL, *security_version = NULL, *boot_kernel = NULL,
                   *dbx_update = NULL;
        _cleanup_free_ char *json = NULL;
        size_t len;
        int c, code;

        while ((c = getopt_long(argc, argv, "n:v:k:i:c:C:o:s:t:b:x:h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        return print_create_help();
                case 'n':
                        if (!kos_name_is_valid(optarg))
                                return usage_error("manifest create", "name '%s' is not [A-Za-z0-9._-]{1,64}", optarg);
                        strcpy(m.name, optarg);
                        break;
                case 'v':
                        version = optarg;
                        break;
                case 's':
                        security_version = optarg;
                        break;
                case 'b':
                        boot_kernel = optarg;
                        break;
                case 'x':
                        dbx_update = optarg;
                        break;
                case 'k':
                        inputs[0].path = optarg;
                        break;
                case 'i':
                        inputs[1].path = optarg;
                        break;
                case 'c':
                        m.cmdline = optarg;
                        break;
                case 'o':
                        output = optarg;
                        break;
                case 't':
                        if (n_hash_tree >= KOS_MANIFEST_MAX_COMPONENTS)
                                return usage_error("manifest create", "--hash-tree given more than %d times",
                                                   KOS_MANIFEST_MAX_COMPONENTS);
                        hash_tree[n_hash_tree++] = optarg;
                        break;
                case 'C':
                        if (m.n_components >= KOS_MANIFEST_MAX_COMPONENTS)
                                return usage_error("manifest create", "at most %d components", KOS_MANIFEST_MAX_COMPONENTS);
                        struct kos_component *comp = &components[m.n_components];
                        struct input *in = &inputs[2 + m.n_components];
                        if ((code = parse_component_arg(optarg, comp, &in->path)) != EXIT_OK)
                                return code;
                        in->label = comp->name;
                        in->blob = &comp->blob;
                        for (size_t i = 0; i < m.n_components; i++)
                                if (strcmp(components[i].name, comp->name) == 0)
                                        return usage_error("manifest create", "component name '%s' given twice", comp->name);
                        m.n_components++;
                        break;
                default:
                        return usage_error("manifest create", "unknown option");
                }
        }
        if (optind != argc)
                return usage_error("manifest create", "unexpected argument '%s'", argv[optind]);
        if (!m.name[0] || !version || !inputs[0].path || !inputs[1].path || m.n_components == 0)
                return usage_error("manifest create", "--name, --version, --kernel, --initrd and at least one --component are required");
        char *end;
        errno = 0;
        unsigned long long v = strtoull(version, &end, 10);
        if (errno || *end || !*version || version[0] == '-' || v > INT64_MAX)
                return usage_error("manifest create", "--version must be a non-negative integer, not '%s'", version);
        m.version = v;
        if (security_version) {
                errno = 0;
                v = strtoull(security_version, &end, 10);
                if (errno || *end || !*security_version || security_version[0] < '0' || security_version[0] > '9' ||
                    v > UINT32_MAX)
                        return usage_error("manifest create", "--security-version must be an integer from 0 to %u, not '%s'",
                                           UINT32_MAX, security_version);
                m.security_version = (uint32_t)v;
        }
        if (strlen(m.cmdline) > KOS_CMDLINE_MAX)
                return usage_error("manifest create", "--cmdline is longer than %d bytes", KOS_CMDLINE_MAX);
        if ((code = mark_hash_tree(&m, hash_tree, n_hash_tree)) != EXIT_OK ||
            (code = check_verity_superblocks(&m, inputs)) != EXIT_OK ||
            (boot_kernel && (code = add_boot_kernel(boot_kernel, &m, &inputs[2 + m.n_components])) != EXIT_OK) ||
            (dbx_update && (code = add_dbx_update(dbx_update, &m, &inputs[2 + m.n_components + m.boot_kernel.present])) !=
                                   EXIT_OK) ||
            (code = hash_inputs(inputs, 2 + m.n_components + m.boot_kernel.present + m.dbx_update.present)) != EXIT_OK)
                return code;
        if (kos_manifest_format(&m, &json, &len) < 0)
                return fail(EXIT_USAGE, "cannot format the manifest");
        /* What every stage will parse: a rule broken (a hash-tree component
         * without verity, say) is caught here, not on a device. */
        _cleanup_manifest_ struct kos_manifest *check = NULL;
        struct kos_error error = KOS_ERROR_NULL;
        if (kos_manifest_parse(json, len, &check, &error) < 0)
                return fail(EXIT_USAGE, "the manifest would be refused: %s", error.msg);
        if (!output)
                return fwrite(json, 1, len, stdout) == len ? EXIT_OK : EXIT_USAGE;
        int r = kos_write_file_atomic_at(AT_FDCWD, output, json, len, 0644);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot write %s: %s", output, strerror(-r));
        return EXIT_OK;
}

/* Adds (or replaces) this key's line in MANIFEST.sig, keeping other keys' lines. */
static int manifest_sign(int argc, char **argv) {
        static const struct option options[] = {{"key", required_argument, NULL, 'k'},
                                                {"pkcs11-module", required_argument, NULL, 'm'},
                                                {"help", no_argument, NULL, 'h'},
                                                {}};
        _cleanup_free_ char *json = NULL, *old = NULL, *sig_path = NULL;
        const char *key = NULL, *module = NULL;
        struct kos_signature_file sigs = {0};
        struct kos_signature mine;
        char out[KOS_SIGNATURE_MAX_LINES * 128];
        struct kos_error error = KOS_ERROR_NULL;
        size_t json_len, old_len, out_len = 0, kept = 0;
        int c, r;

        while ((c = getopt_long(argc, argv, "k:m:h", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: kos manifest sign --key SECRET.pem|'pkcs11:...' [--pkcs11-module PATH] MANIFEST\n\n"
                               "Signs the exact bytes of MANIFEST with the Ed25519 key and writes the\n"
                               "line into MANIFEST.sig, keeping lines by other keys (key rotation).\n"
                               "The key is a PEM secret key file or a PKCS#11 URI (RFC 7512) naming a key\n"
                               "in an HSM: token=, object=, id=, serial=; pin-value= or\n"
                               "pin-source=file:PATH and module-path= in the query. The module is\n"
                               "module-path=, else --pkcs11-module, else $KOS_PKCS11_MODULE, else\n"
                               "p11-kit's proxy module. Quote the URI: ';' and '&' are shell syntax.\n");
                        return EXIT_OK;
                }
                if (c == 'k')
                        key = optarg;
                else if (c == 'm')
                        module = optarg;
                else
                        return usage_error("manifest sign", "unknown option");
        }
        if (!key || argc - optind != 1)
                return usage_error("manifest sign", "expected --key SECRET.pem (or a PKCS#11 URI) and MANIFEST");
        const char *path = argv[optind];
        if ((r = read_path(path, KOS_MANIFEST_MAX, &json, &json_len)) < 0)
                return fail(EXIT_USAGE, "cannot read %s: %s", path, r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
        if ((c = signing_key_sign(key, module, json, json_len, mine.signature, mine.key_id)) != EXIT_OK)
                return c;
        if (asprintf(&sig_path, "%s.sig", path) < 0)
                return fail(EXIT_USAGE, "out of memory");
        r = read_path(sig_path, KOS_SIGNATURE_FILE_MAX, &old, &old_len);
        if (r >= 0 && kos_signature_file_parse(old, old_len, &sigs, &error) < 0)
                return fail(EXIT_USAGE, "%s: %s; remove it to start afresh", sig_path, error.msg);
        if (r < 0 && r != -ENOENT)
                return fail(EXIT_USAGE, "cannot read %s: %s", sig_path, strerror(-r));
        for (size_t i = 0; i < sigs.n; i++)
                if (memcmp(sigs.lines[i].key_id, mine.key_id, KOS_KEY_ID_LEN) != 0) {
                        kos_signature_format_line(&sigs.lines[i], out + out_len);
                        out_len += strlen(out + out_len);
                        kept++;
                }
        if (kept >= KOS_SIGNATURE_MAX_LINES)
                return fail(EXIT_USAGE, "%s already holds %d signatures", sig_path, KOS_SIGNATURE_MAX_LINES);
        kos_signature_format_line(&mine, out + out_len);
        out_len += strlen(out + out_len);
        r = kos_write_file_atomic_at(AT_FDCWD, sig_path, out, out_len, 0644);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot write %s: %s", sig_path, strerror(-r));
        char id[KOS_KEY_ID_HEX_LEN + 1];
        kos_hex_encode(mine.key_id, KOS_KEY_ID_LEN, id);
        printf("signed %s with key %s\n", path, id);
        return EXIT_OK;
}

/* Signature over the exact bytes, then the strict parse. */
static int verify_file(const char *path, const char *keyring_dir, struct kos_manifest **ret, char ret_signer[static 17],
                       uint8_t ret_id[static KOS_SHA256_LEN]) {
        _cleanup_free_ char *sig_path = NULL;
        struct kos_loaded_manifest loaded;
        struct kos_keyring ring;
        int code;

        if ((code = load_keyring_or_fail(keyring_dir, &ring)) != EXIT_OK)
                return code;
        if (asprintf(&sig_path, "%s.sig", path) < 0)
                return fail(EXIT_USAGE, "out of memory");
        if (kos_manifest_load_verified_at(&ring, AT_FDCWD, path, sig_path, "", &loaded) < 0) {
                return fail_manifest_load(path, &loaded, "");
        }
        kos_hex_encode(loaded.signer, KOS_KEY_ID_LEN, ret_signer);
        memcpy(ret_id, loaded.id, KOS_SHA256_LEN);
        *ret = TAKE_PTR(loaded.manifest);
        kos_loaded_manifest_done(&loaded);
        return EXIT_OK;
}

static int manifest_verify(int argc, char **argv) {
        static const struct option options[] = {{"keyring", required_argument, NULL, 'k'}, {"help", no_argument, NULL, 'h'}, {}};
        _cleanup_manifest_ struct kos_manifest *m = NULL;
        const char *keyring = NULL;
        char signer[KOS_KEY_ID_HEX_LEN + 1];
        int c, code;

        while ((c = getopt_long(argc, argv, "k:h", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: kos manifest verify --keyring DIR MANIFEST\n\n"
                               "Checks MANIFEST.sig against the keyring (a directory of *.pem public\n"
                               "keys) over the exact bytes, then parses MANIFEST strictly, and lists how\n"
                               "selection checks each component (verify sha256: every byte; hash-tree:\n"
                               "its dm-verity tree). Components are not checked: 'kos select' does that.\n"
                               "Exit 0 valid, 1 invalid.\n");
                        return EXIT_OK;
                }
                if (c != 'k')
                        return usage_error("manifest verify", "unknown option");
                keyring = optarg;
        }
        if (!keyring || argc - optind != 1)
                return usage_error("manifest verify", "expected --keyring DIR and MANIFEST");
        uint8_t id[KOS_SHA256_LEN];
        if ((code = verify_file(argv[optind], keyring, &m, signer, id)) != EXIT_OK)
                return code;
        printf("%s: valid manifest %s version %llu, signed by key %s\n", argv[optind], m->name,
               (unsigned long long)m->version, signer);
        /* What selection will check of each component (not done here). */
        for (size_t i = 0; i < m->n_components; i++)
                printf("  component %s: verify %s\n", m->components[i].name,
                       kos_verify_to_string(m->components[i].verify));
        return EXIT_OK;
}

static void print_blob(const char *label, const char *type, const struct kos_blob *b) {
        char hex[KOS_SHA256_HEX_LEN + 1];

        kos_hex_encode(b->sha256, KOS_SHA256_LEN, hex);
        printf("  %-16s %-8s %s %12llu bytes\n", label, type, hex, (unsigned long long)b->size);
}

static int manifest_show(int argc, char **argv) {
        static const struct option options[] = {{"keyring", required_argument, NULL, 'k'}, {"help", no_argument, NULL, 'h'}, {}};
        _cleanup_manifest_ struct kos_manifest *m = NULL;
        const char *keyring = NULL;
        char signer[KOS_KEY_ID_HEX_LEN + 1] = "", id[KOS_SHA256_HEX_LEN + 1];
        struct kos_error error = KOS_ERROR_NULL;
        uint8_t digest[KOS_SHA256_LEN];
        size_t len;
        int c, r, code;

        while ((c = getopt_long(argc, argv, "k:h", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: kos manifest show [--keyring DIR] MANIFEST\n\n"
                               "Prints the manifest's id, fields and components. With --keyring the\n"
                               "signature is verified first; without, the output says it is unchecked.\n");
                        return EXIT_OK;
                }
                if (c != 'k')
                        return usage_error("manifest show", "unknown option");
                keyring = optarg;
        }
        if (argc - optind != 1)
                return usage_error("manifest show", "expected MANIFEST");
        const char *path = argv[optind];
        if (keyring) {
                if ((code = verify_file(path, keyring, &m, signer, digest)) != EXIT_OK)
                        return code;
        } else {
                /* Shown, not trusted: the output says the signature was not checked. */
                _cleanup_free_ char *untrusted_json = NULL;
                if ((r = read_path(path, KOS_MANIFEST_MAX, &untrusted_json, &len)) < 0)
                        return fail(EXIT_USAGE, "cannot read %s: %s", path, file_error_string(r));
                if (kos_manifest_parse(untrusted_json, len, &m, &error) < 0)
                        return fail(EXIT_INVALID, "%s: manifest-malformed: %s", path, error.msg);
                if ((r = kos_sha256(untrusted_json, len, digest)) < 0)
                        return fail(EXIT_USAGE, "cannot hash %s: %s", path, strerror(-r));
        }
        kos_hex_encode(digest, KOS_SHA256_LEN, id);
        printf("manifest  %s\nid        %s\nversion   %llu\nsecurity  %lu (security_version)\nsignature %s%s\ncmdline   %s\n",
               m->name, id, (unsigned long long)m->version, (unsigned long)m->security_version,
               signer[0] ? "valid, key " : "not checked (use --keyring)", signer,
               m->cmdline);
        print_blob("kernel", "", &m->kernel);
        print_blob("initrd", "", &m->initrd);
        for (size_t i = 0; i < m->n_components; i++) {
                const struct kos_component *comp = &m->components[i];
                print_blob(comp->name, kos_component_type_to_string(comp->type), &comp->blob);
                printf("  %-16s checked by %s%s%s\n", "",
                       comp->verify == KOS_VERIFY_HASH_TREE ? "its dm-verity hash tree (verify: hash-tree)"
                                                           : "sha256 of every byte",
                       comp->verity.enabled ? "; dm-verity" : "", comp->encryption.enabled ? "; LUKS2" : "");
        }
        if (m->boot_kernel.present) {
                print_blob("boot-kernel", "uki", &m->boot_kernel.blob);
                printf("  %-16s Boot Kernel security version %lu\n", "", (unsigned long)m->boot_kernel.security_version);
        }
        if (m->dbx_update.present)
                print_blob("dbx-update", "auth", &m->dbx_update.blob);
        return EXIT_OK;
}

int cmd_manifest(int argc, char **argv) {
        if (argc >= 2 && strcmp(argv[1], "create") == 0)
                return manifest_create(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "sign") == 0)
                return manifest_sign(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "verify") == 0)
                return manifest_verify(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "show") == 0)
                return manifest_show(argc - 1, argv + 1);
        if (wants_help(argc, argv)) {
                printf("Usage: kos manifest create|sign|verify|show ...\n\n"
                       "  create   write a manifest from kernel, initrd, cmdline and component files\n"
                       "  sign     add an Ed25519 signature line to MANIFEST.sig\n"
                       "  verify   check the signature against a keyring, then parse strictly\n"
                       "  show     print a manifest\n\nEach takes --help.\n");
                return EXIT_OK;
        }
        return usage_error("manifest", "expected create, sign, verify or show");
}
