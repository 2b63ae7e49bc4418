/* SPDX-License-Identifier: MIT */
/* Subcommands that change or list an ImageFS: imagefs init, component add,
 * install, activate, deactivate, list, gc. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bootstate.h"
#include "gc.h"
#include "kos.h"
#include "mark-good.h"
#include "select.h"
#include "signature.h"
#include "verify.h"

int cmd_imagefs(int argc, char **argv) {
        if (wants_help(argc, argv)) {
                printf("Usage: kos imagefs init DIR\n\nCreates DIR/components/, DIR/manifests/ and an empty DIR/active.\n"
                       "An existing ImageFS is left as it is.\n");
                return EXIT_OK;
        }
        if (argc != 3 || strcmp(argv[1], "init") != 0)
                return usage_error("imagefs", "expected 'init DIR'");
        int r = kos_imagefs_init(argv[2]);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot create ImageFS %s: %s", argv[2], strerror(-r));
        return EXIT_OK;
}

int cmd_component(int argc, char **argv) {
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        int r, code = EXIT_OK;

        if (argc >= 2 && strcmp(argv[1], "build") == 0)
                return cmd_component_build(argc - 1, argv + 1);
        if (wants_help(argc, argv)) {
                printf("Usage: kos component add DIR FILE...\n       kos component build ... (see its --help)\n\n"
                       "add copies each FILE into DIR/components/<sha256> (fsynced, renamed into\n"
                       "place) and prints '<sha256>  FILE', as sha256sum does.\n");
                return EXIT_OK;
        }
        if (argc < 4 || strcmp(argv[1], "add") != 0)
                return usage_error("component", "expected 'add DIR FILE...'");
        if ((code = open_imagefs_or_fail(argv[2], &img)) != EXIT_OK)
                return code;
        for (int i = 3; i < argc && code == EXIT_OK; i++) {
                _cleanup_close_ int fd = kos_open_regular_at(AT_FDCWD, argv[i], 0, NULL);
                uint8_t digest[KOS_SHA256_LEN];
                char hex[KOS_SHA256_HEX_LEN + 1];
                struct progress p;

                if (fd < 0) {
                        code = fail(EXIT_USAGE, "cannot open %s: %s", argv[i], file_error_string(fd));
                        break;
                }
                progress_init(&p, argv[i]);
                r = kos_imagefs_add_component(&img, fd, digest, progress_print, &p);
                progress_finish(&p);
                if (r < 0) {
                        code = fail(EXIT_USAGE, "cannot add %s: %s", argv[i],
                                    r == -EBADFD ? "not a regular file" : r == -EAGAIN ? "it changed while copied" : strerror(-r));
                        break;
                }
                kos_hex_encode(digest, KOS_SHA256_LEN, hex);
                printf("%s  %s\n", hex, argv[i]);
        }
        kos_imagefs_close(&img);
        return code;
}

/* Reads MANIFEST and MANIFEST.sig, checks both as selection would (the
 * signature too when a keyring is given), then copies them in. */
static int install(const char *dir, const char *path, const char *keyring_dir) {
        _cleanup_free_ char *sig_path = NULL;
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        struct kos_loaded_manifest loaded;
        struct kos_candidate c = {0};
        struct kos_select_options options = {0};
        struct kos_keyring ring;
        struct progress p;
        int r, code;

        if (asprintf(&sig_path, "%s.sig", path) < 0)
                return fail(EXIT_USAGE, "out of memory");
        if (keyring_dir && (code = load_keyring_or_fail(keyring_dir, &ring)) != EXIT_OK)
                return code;
        /* Without --keyring the operator vouches for the manifest; every
         * stage that boots it verifies it. */
        r = keyring_dir ? kos_manifest_load_verified_at(&ring, AT_FDCWD, path, sig_path, "", &loaded)
                        : kos_manifest_load_unverified_at(AT_FDCWD, path, sig_path, "", &loaded);
        if (r < 0) {
                return fail_manifest_load(path, &loaded,
                                          loaded.reason == KOS_REASON_SIGNATURE_MISSING ? " (sign the manifest with 'kos manifest sign')" : "");
        }
        const struct kos_manifest *m = loaded.manifest;
        if ((code = open_imagefs_or_fail(dir, &img)) != EXIT_OK) {
                kos_loaded_manifest_done(&loaded);
                return code;
        }
        progress_init(&p, "verifying components");
        options.progress = progress_print;
        options.userdata = &p;
        /* Every byte, hash-tree components too: the file must be what its
         * name (the content address) says, not just lead to the root hash. */
        options.sha256_only = true;
        bool ok = kos_check_components(&img, m, &options, &c, NULL, NULL);
        progress_finish(&p);
        if (!ok)
                code = fail(EXIT_INVALID, "%s: %s: %s (add the files first with 'kos component add')", path,
                            kos_reason_to_string(c.reason), c.detail);
        else if ((r = kos_imagefs_install_manifest(&img, m->name, loaded.json, loaded.json_len, loaded.sig, loaded.sig_len)) < 0)
                code = fail(EXIT_USAGE, "cannot install %s: %s", m->name,
                            r == -EEXIST ? "a different manifest with this name is installed; give the new one a new name" : file_error_string(r));
        else
                printf("installed %s\n", m->name);
        kos_imagefs_close(&img);
        kos_loaded_manifest_done(&loaded);
        return code;
}

int cmd_install(int argc, char **argv) {
        static const struct option options[] = {{"keyring", required_argument, NULL, 'k'}, {"help", no_argument, NULL, 'h'}, {}};
        const char *keyring = NULL;
        int c;

        while ((c = getopt_long(argc, argv, "k:h", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: kos install [--keyring DIR] IMAGEFS MANIFEST\n\n"
                               "Copies MANIFEST and MANIFEST.sig into IMAGEFS/manifests/<name>.json(.sig).\n"
                               "Every component it names must already be in IMAGEFS/components/ with\n"
                               "the right size and sha256. With --keyring, the signature must verify.\n"
                               "Installing does not activate: see 'kos activate'.\n");
                        return EXIT_OK;
                }
                if (c != 'k')
                        return usage_error("install", "unknown option");
                keyring = optarg;
        }
        if (argc - optind != 2)
                return usage_error("install", "expected IMAGEFS and MANIFEST");
        return install(argv[optind], argv[optind + 1], keyring);
}

static int change_active(const char *command, const char *dir, const char *name, int where, unsigned tries) {
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        struct kos_active_list list;
        char json[KOS_NAME_MAX + 8], sig[KOS_NAME_MAX + 12];
        int r, code;

        if (!kos_name_is_valid(name))
                return usage_error(command, "'%s' is not a valid manifest name ([A-Za-z0-9._-]{1,64})", name);
        if ((code = open_imagefs_or_fail(dir, &img)) != EXIT_OK)
                return code;
        r = kos_active_read(&img, &list);
        if (r < 0 && r != -ENOENT) {
                code = fail(EXIT_USAGE, "cannot read %s/active: %s", dir, file_error_string(r));
                goto out;
        }
        kos_manifest_file_names(name, json, sig);
        if (where == 0)
                kos_active_remove(&list, name);
        else if (faccessat(img.manifests_fd, json, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
                code = fail(EXIT_USAGE, "manifest %s is not installed in %s (see 'kos install')", name, dir);
                goto out;
        } else if (tries > 0) {
                /* The trial state first: the manifest is never active without it. */
                uint8_t id[KOS_SHA256_LEN];
                if ((r = kos_imagefs_manifest_id(&img, name, id)) < 0 || (r = kos_boot_state_set_tries(&img, id, tries)) < 0) {
                        code = fail(EXIT_USAGE, "cannot put %s on trial: %s", name, file_error_string(r));
                        goto out;
                }
        }
        if (where != 0 && (r = kos_active_insert(&list, name, where < 0)) < 0) {
                code = fail(EXIT_USAGE, "cannot activate %s: the active list is full (%d entries)", name, KOS_ACTIVE_MAX);
                goto out;
        }
        r = kos_active_write(&img, &list);
        if (r < 0)
                code = fail(EXIT_USAGE, "cannot write %s/active: %s", dir, strerror(-r));
out:
        kos_imagefs_close(&img);
        return code;
}

int cmd_activate(int argc, char **argv) {
        static const struct option options[] = {{"first", no_argument, NULL, 'f'},
                                                {"last", no_argument, NULL, 'l'},
                                                {"tries", required_argument, NULL, 't'},
                                                {"help", no_argument, NULL, 'h'},
                                                {}};
        int c, where = -1;
        unsigned tries = 0;
        char *end;

        while ((c = getopt_long(argc, argv, "flt:h", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: kos activate IMAGEFS NAME [--first|--last] [--tries N]\n\n"
                               "Puts an installed manifest first (default) or last in IMAGEFS/active,\n"
                               "removing it from where it was. The file is replaced atomically.\n"
                               "With --tries N (1 to 99) the manifest is on trial: the Boot Kernel\n"
                               "boots it at most N times unless it is marked good (kos mark-good).\n");
                        return EXIT_OK;
                }
                if (c == 'f' || c == 'l')
                        where = c == 'f' ? -1 : 1;
                else if (c == 't') {
                        errno = 0;
                        unsigned long n = strtoul(optarg, &end, 10);
                        if (errno || *end || n < 1 || n > KOS_TRIES_MAX)
                                return usage_error("activate", "--tries takes 1 to %d, not '%s'", KOS_TRIES_MAX, optarg);
                        tries = (unsigned)n;
                } else
                        return usage_error("activate", "unknown option");
        }
        if (argc - optind != 2)
                return usage_error("activate", "expected IMAGEFS and NAME");
        return change_active("activate", argv[optind], argv[optind + 1], where, tries);
}

int cmd_deactivate(int argc, char **argv) {
        if (wants_help(argc, argv)) {
                printf("Usage: kos deactivate IMAGEFS NAME\n\nRemoves NAME from IMAGEFS/active (atomically); the manifest stays installed.\n");
                return EXIT_OK;
        }
        if (argc != 3)
                return usage_error("deactivate", "expected IMAGEFS and NAME");
        return change_active("deactivate", argv[1], argv[2], 0, 0);
}

int cmd_mark_good(int argc, char **argv) {
        static const struct option options[] = {{"keyring", required_argument, NULL, 'k'}, {"help", no_argument, NULL, 'h'}, {}};
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        struct kos_mark_good_result result;
        struct kos_keyring ring;
        uint8_t id[KOS_SHA256_LEN];
        const char *keyring = NULL;
        int c, r, code;

        while ((c = getopt_long(argc, argv, "k:h", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: kos mark-good IMAGEFS NAME --keyring DIR\n\n"
                               "Ends the trial of an installed manifest: the Boot Kernel no longer\n"
                               "counts its boots (boot-state/<id>.good). The manifest must verify\n"
                               "against the keyring and not be below the rollback floor; the floor\n"
                               "then rises to its security_version, and manifests below it are taken\n"
                               "out of IMAGEFS/active (they never boot on this device again).\n");
                        return EXIT_OK;
                }
                if (c != 'k')
                        return usage_error("mark-good", "unknown option");
                keyring = optarg;
        }
        if (!keyring || argc - optind != 2 || !kos_name_is_valid(argv[optind + 1]))
                return usage_error("mark-good", "expected IMAGEFS, NAME and --keyring DIR");
        const char *name = argv[optind + 1];
        if ((code = load_keyring_or_fail(keyring, &ring)) != EXIT_OK ||
            (code = open_imagefs_or_fail(argv[optind], &img)) != EXIT_OK)
                return code;
        if ((r = kos_imagefs_manifest_id(&img, name, id)) < 0)
                code = fail(EXIT_USAGE, "manifest %s is not installed: %s", name, file_error_string(r));
        else if ((r = kos_mark_good(&img, &ring, id, &result)) == -EBADMSG)
                code = fail(EXIT_INVALID, "cannot mark %s good: %s", name, result.error.msg);
        else if (r < 0)
                code = fail(EXIT_USAGE, "cannot mark %s good: %s", name, strerror(-r));
        else {
                if (result.floor_raised)
                        printf("rollback floor raised from %lu to %lu\n", (unsigned long)result.floor_before,
                               (unsigned long)result.security_version);
                for (size_t i = 0; i < result.n_deactivated; i++)
                        printf("deactivated %s: below the rollback floor %lu\n", result.deactivated[i],
                               (unsigned long)result.security_version);
                for (size_t i = 0; i < result.n_uninstalled; i++)
                        printf("uninstalled %s: below the rollback floor %lu and not in active\n", result.uninstalled[i],
                               (unsigned long)result.security_version);
        }
        kos_imagefs_close(&img);
        return code;
}

static void print_state(const struct kos_imagefs *img, const char *name) {
        uint8_t id[KOS_SHA256_LEN];
        struct kos_boot_state st;
        bool unconfirmed;

        if (kos_imagefs_manifest_id(img, name, id) < 0 || kos_boot_state_read(img, id, &st) < 0)
                return;
        if (st.kind == KOS_BOOT_STATE_TRIES)
                printf("  (on trial: %u tries left)", st.tries_left);
        else if (st.kind == KOS_BOOT_STATE_GOOD)
                printf("  (marked good)");
        if (kos_boot_state_is_unconfirmed(img, id, &unconfirmed) >= 0 && unconfirmed)
                printf("  (last boot unconfirmed: hash-tree components are hashed in full next time)");
}

static int print_if_inactive(const struct kos_imagefs *img, const char *name, void *userdata) {
        const struct kos_active_list *list = userdata;

        if (kos_active_find(list, name) < 0)
                printf("   -  %s\n", name);
        return 0;
}

int cmd_list(int argc, char **argv) {
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        struct kos_active_list list;
        int r, code;

        if (wants_help(argc, argv)) {
                printf("Usage: kos list IMAGEFS\n\nPrints the active list in boot order (position, name), then the\n"
                       "installed manifests that are not active (marked -). Nothing is verified: see 'kos select'.\n");
                return EXIT_OK;
        }
        if (argc != 2)
                return usage_error("list", "expected IMAGEFS");
        if ((code = open_imagefs_or_fail(argv[1], &img)) != EXIT_OK)
                return code;
        r = kos_active_read(&img, &list);
        if (r < 0 && r != -ENOENT)
                code = fail(EXIT_USAGE, "cannot read active: %s", file_error_string(r));
        else {
                for (size_t i = 0; i < list.n; i++) {
                        printf("%4zu  %s%s", i + 1, list.entries[i].name, list.entries[i].name_valid ? "" : "  (invalid name)");
                        if (list.entries[i].name_valid)
                                print_state(&img, list.entries[i].name);
                        printf("\n");
                }
                r = kos_imagefs_for_each_manifest(&img, print_if_inactive, &list);
                if (r < 0)
                        code = fail(EXIT_USAGE, "cannot list manifests: %s", strerror(-r));
        }
        kos_imagefs_close(&img);
        return code;
}

static void print_removed(const char *name, void *userdata) {
        printf("%s components/%s\n", *(bool *)userdata ? "would remove" : "removed", name);
}

static void print_ignored(const char *name, const char *why, void *userdata) {
        fprintf(stderr, "kos gc: ignoring manifests/%s.json, it protects nothing: %s\n", name, why);
}

int cmd_gc(int argc, char **argv) {
        static const struct option options[] = {{"keyring", required_argument, NULL, 'k'},
                                                {"dry-run", no_argument, NULL, 'n'},
                                                {"help", no_argument, NULL, 'h'},
                                                {}};
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        struct kos_keyring ring;
        const char *keyring = NULL;
        bool dry_run = false;
        int c, r, code;

        while ((c = getopt_long(argc, argv, "k:nh", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: kos gc IMAGEFS --keyring DIR [--dry-run]\n\n"
                               "Removes files of IMAGEFS/components/ that no installed manifest\n"
                               "references, and leftover temporary files. Only manifests whose signature\n"
                               "verifies against the keyring count: others are reported and ignored (they\n"
                               "protect nothing and are not removed). If a manifest cannot be read (I/O\n"
                               "error), nothing is removed.\n");
                        return EXIT_OK;
                }
                if (c == 'k')
                        keyring = optarg;
                else if (c == 'n')
                        dry_run = true;
                else
                        return usage_error("gc", "unknown option");
        }
        if (!keyring || argc - optind != 1)
                return usage_error("gc", "expected IMAGEFS and --keyring DIR");
        if ((code = load_keyring_or_fail(keyring, &ring)) != EXIT_OK ||
            (code = open_imagefs_or_fail(argv[optind], &img)) != EXIT_OK)
                return code;
        struct kos_gc_options o = {
                .ring = &ring, .dry_run = dry_run, .on_remove = print_removed, .on_ignored = print_ignored, .userdata = &dry_run};
        r = kos_imagefs_gc(&img, &o);
        if (r == -EIO)
                code = fail(EXIT_USAGE, "an installed manifest cannot be read (I/O error); not collecting anything");
        else if (r < 0)
                code = fail(EXIT_USAGE, "gc failed: %s", strerror(-r));
        kos_imagefs_close(&img);
        return code;
}
