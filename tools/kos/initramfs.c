/* SPDX-License-Identifier: MIT */
#include "initramfs.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "util.h"

#define MAX_ENTRIES 4096

struct entry {
        char *path; /* without leading slash */
        mode_t mode;
        char *source;
        void *data;
        size_t len;
};

struct initramfs {
        size_t n;
        struct entry entries[MAX_ENTRIES];
};

struct initramfs *initramfs_new(void) {
        return calloc(1, sizeof(struct initramfs));
}

void initramfs_free(struct initramfs *ir) {
        if (!ir)
                return;
        for (size_t i = 0; i < ir->n; i++) {
                free(ir->entries[i].path);
                free(ir->entries[i].source);
                free(ir->entries[i].data);
        }
        free(ir);
}

static int add(struct initramfs *ir, const char *path, mode_t mode, const char *source, const void *data, size_t len) {
        while (*path == '/')
                path++;
        for (size_t i = 0; i < ir->n; i++)
                if (strcmp(ir->entries[i].path, path) == 0)
                        return S_ISDIR(mode) && S_ISDIR(ir->entries[i].mode) ? 0 : -EEXIST;
        if (ir->n >= MAX_ENTRIES)
                return -E2BIG;
        struct entry *e = &ir->entries[ir->n];
        *e = (struct entry){.path = strdup(path), .mode = mode, .len = len};
        if (source)
                e->source = strdup(source);
        if (data) {
                e->data = malloc(len ? len : 1);
                if (e->data)
                        memcpy(e->data, data, len);
        }
        if (!e->path || (source && !e->source) || (data && !e->data))
                return -ENOMEM;
        ir->n++;
        return 0;
}

/* Adds path and every parent directory. */
int initramfs_add_dir(struct initramfs *ir, const char *path) {
        char buf[512];
        int r;

        snprintf(buf, sizeof buf, "%s", path);
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        if ((r = add(ir, buf, S_IFDIR | 0755, NULL, NULL, 0)) < 0)
                                return r;
                        *p = '/';
                }
        return add(ir, buf, S_IFDIR | 0755, NULL, NULL, 0);
}

static int add_parents(struct initramfs *ir, const char *path) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", path);
        char *slash = strrchr(buf, '/');
        if (!slash || slash == buf)
                return 0;
        *slash = '\0';
        return initramfs_add_dir(ir, buf);
}

int initramfs_add_file(struct initramfs *ir, const char *path, const char *source, mode_t mode) {
        struct stat st;
        int r;

        if (stat(source, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((r = add_parents(ir, path)) < 0)
                return r;
        return add(ir, path, S_IFREG | mode, source, NULL, (size_t)st.st_size);
}

int initramfs_add_data(struct initramfs *ir, const char *path, const void *data, size_t len, mode_t mode) {
        int r = add_parents(ir, path);
        return r < 0 ? r : add(ir, path, S_IFREG | mode, NULL, data, len);
}

static int add_pem_files(struct initramfs *ir, const char *path, const char *dir) {
        struct dirent **names = NULL;
        int n = scandir(dir, &names, NULL, alphasort), r = 0, added = 0;

        if (n < 0)
                return -errno;
        for (int i = 0; i < n; i++) {
                const char *name = names[i]->d_name;
                size_t len = strlen(name);
                if (r >= 0 && name[0] != '.' && len > 4 && strcmp(name + len - 4, ".pem") == 0) {
                        char src[1024], dst[512];
                        snprintf(src, sizeof src, "%s/%s", dir, name);
                        snprintf(dst, sizeof dst, "%s/%s", path, name);
                        r = initramfs_add_file(ir, dst, src, 0644);
                        added++;
                }
                free(names[i]);
        }
        free(names);
        if (r >= 0 && added == 0)
                r = -ENOKEY;
        return r;
}

/* The keyring's *.pem files and, when there, its revocation keys (the
 * revocation/ subdirectory, lib/boot/keyring.h) beneath path/revocation/. */
int initramfs_add_pem_dir(struct initramfs *ir, const char *path, const char *dir) {
        char sub_dir[1024], sub_path[512];
        struct stat st;
        int r = add_pem_files(ir, path, dir);

        if (r < 0 || (size_t)snprintf(sub_dir, sizeof sub_dir, "%s/revocation", dir) >= sizeof sub_dir ||
            lstat(sub_dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return r;
        snprintf(sub_path, sizeof sub_path, "%s/revocation", path);
        return add_pem_files(ir, sub_path, sub_dir);
}

int initramfs_add_dir_files(struct initramfs *ir, const char *path, const char *dir, mode_t mode) {
        struct dirent **names = NULL;
        int n = scandir(dir, &names, NULL, alphasort), r = 0;

        if (n < 0)
                return -errno;
        for (int i = 0; i < n; i++) {
                char src[1024], dst[512];
                struct stat st;
                if (r >= 0 && names[i]->d_name[0] != '.' &&
                    (size_t)snprintf(src, sizeof src, "%s/%s", dir, names[i]->d_name) < sizeof src &&
                    (size_t)snprintf(dst, sizeof dst, "%s/%s", path, names[i]->d_name) < sizeof dst &&
                    stat(src, &st) == 0 && S_ISREG(st.st_mode))
                        r = initramfs_add_file(ir, dst, src, mode);
                free(names[i]);
        }
        free(names);
        return r;
}

/* The libraries ldd names: "libx.so.1 => /lib/.../libx.so.1 (0x...)" and the
 * loader "/lib64/ld-linux-x86-64.so.2 (0x...)". ldd runs the program's
 * loader in list mode; it is only used on programs this build made or the
 * host's own. */
int initramfs_add_program(struct initramfs *ir, const char *path, const char *source) {
        char command[1200], line[1024];
        int r = initramfs_add_file(ir, path, source, 0755);

        if (r < 0)
                return r;
        if ((size_t)snprintf(command, sizeof command, "ldd '%s'", source) >= sizeof command || strchr(source, '\''))
                return -EINVAL;
        FILE *p = popen(command, "re");
        if (!p)
                return -errno;
        while (r >= 0 && fgets(line, sizeof line, p)) {
                char *lib = strstr(line, "=> ");
                lib = lib ? lib + 3 : line + strspn(line, " \t");
                if (*lib != '/')
                        continue; /* linux-vdso.so.1 and the like */
                lib[strcspn(lib, " \n")] = '\0';
                char real[PATH_MAX];
                if (!realpath(lib, real)) {
                        r = -errno;
                        break;
                }
                r = initramfs_add_file(ir, lib, real, 0755);
                if (r == -EEXIST)
                        r = 0;
        }
        int status = pclose(p);
        if (r >= 0 && status != 0)
                r = -ENOEXEC;
        return r;
}

static int compare_entries(const void *a, const void *b) {
        return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

struct gz {
        z_stream z;
        int fd;
        bool raw; /* no compression: the cpio as it is */
        size_t raw_total;
        uint8_t out[65536];
};

static int gz_write(struct gz *g, const void *data, size_t len, int flush) {
        if (g->raw) {
                g->raw_total += len;
                return len ? kos_write_all(g->fd, data, len) : 0;
        }
        g->z.next_in = (Bytef *)data;
        g->z.avail_in = (uInt)len;
        do {
                g->z.next_out = g->out;
                g->z.avail_out = sizeof g->out;
                int zr = deflate(&g->z, flush);
                if (zr == Z_STREAM_ERROR)
                        return -EIO;
                int r = kos_write_all(g->fd, g->out, sizeof g->out - g->z.avail_out);
                if (r < 0)
                        return r;
        } while (g->z.avail_out == 0 || (flush == Z_FINISH && g->z.avail_in > 0));
        return 0;
}

static int write_padding(struct gz *g, size_t written) {
        static const char zeros[4];
        return gz_write(g, zeros, (4 - written % 4) % 4, Z_NO_FLUSH);
}

static int write_header(struct gz *g, unsigned ino, mode_t mode, size_t size, const char *name) {
        char header[128];
        size_t name_len = strlen(name) + 1;
        unsigned nlink = S_ISDIR(mode) ? 2 : 1;

        snprintf(header, sizeof header, "070701%08X%08X%08X%08X%08X%08X%08zX%08X%08X%08X%08X%08zX%08X", ino,
                 (unsigned)mode, 0u, 0u, nlink, 0u, size, 0u, 0u, 0u, 0u, name_len, 0u);
        int r = gz_write(g, header, 110, Z_NO_FLUSH);
        if (r >= 0)
                r = gz_write(g, name, name_len, Z_NO_FLUSH);
        return r < 0 ? r : write_padding(g, 110 + name_len);
}

static int write_body(struct gz *g, const struct entry *e) {
        if (e->data)
                return gz_write(g, e->data, e->len, Z_NO_FLUSH);
        _cleanup_close_ int fd = open(e->source, O_RDONLY | O_CLOEXEC);
        char buf[65536];
        size_t total = 0;
        if (fd < 0)
                return -errno;
        for (ssize_t n; (n = read(fd, buf, sizeof buf)) != 0; total += (size_t)n) {
                if (n < 0)
                        return -errno;
                int r = gz_write(g, buf, (size_t)n, Z_NO_FLUSH);
                if (r < 0)
                        return r;
        }
        return total == e->len ? 0 : -EAGAIN; /* it changed since it was added */
}

static int write_archive(struct initramfs *ir, struct gz *g) {
        int r = 0;

        qsort(ir->entries, ir->n, sizeof ir->entries[0], compare_entries);
        for (size_t i = 0; i < ir->n && r >= 0; i++) {
                const struct entry *e = &ir->entries[i];
                size_t size = S_ISREG(e->mode) ? e->len : 0;
                r = write_header(g, (unsigned)i + 1, e->mode, size, e->path);
                if (r >= 0 && S_ISREG(e->mode))
                        r = write_body(g, e);
                if (r >= 0)
                        r = write_padding(g, size);
        }
        if (r >= 0)
                r = write_header(g, 0, 0, 0, "TRAILER!!!");
        return r < 0 ? r : gz_write(g, NULL, 0, Z_FINISH);
}

static int write_to(struct initramfs *ir, const char *output, bool raw, size_t *ret_size) {
        char tmp[1024];
        struct gz *g = calloc(1, sizeof *g);
        int r;

        if (!g)
                return -ENOMEM;
        g->raw = raw;
        snprintf(tmp, sizeof tmp, "%s.tmp-%d", output, (int)getpid());
        g->fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (g->fd < 0) {
                free(g);
                return -errno;
        }
        if (raw) {
                r = write_archive(ir, g);
                *ret_size = g->raw_total;
        /* windowBits 31: gzip framing; zlib's default header has mtime 0. */
        } else if (deflateInit2(&g->z, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY) != Z_OK)
                r = -ENOMEM;
        else {
                r = write_archive(ir, g);
                *ret_size = g->z.total_out;
                deflateEnd(&g->z);
        }
        if (r >= 0 && fsync(g->fd) < 0)
                r = -errno;
        close(g->fd);
        free(g);
        if (r >= 0 && rename(tmp, output) < 0)
                r = -errno;
        if (r < 0)
                unlink(tmp);
        return r;
}

int initramfs_write(struct initramfs *ir, const char *output, size_t *ret_size) {
        return write_to(ir, output, false, ret_size);
}

int initramfs_write_uncompressed(struct initramfs *ir, const char *output, size_t *ret_size) {
        return write_to(ir, output, true, ret_size);
}

/* modules.dep lines: "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko ...". */
struct module_index {
        char *text;
        size_t n;
        char *lines[8192];
};

/* "kernel/fs/ext4/ext4.ko: ..." or "ext4" -> "ext4". */
static void module_name_of(const char *path, char *out, size_t size) {
        size_t path_len = strcspn(path, ":");
        const char *base = path;
        for (size_t i = 0; i < path_len; i++)
                if (path[i] == '/')
                        base = path + i + 1;
        size_t n = strcspn(base, ".:");
        if (n >= size)
                n = size - 1;
        for (size_t i = 0; i < n; i++)
                out[i] = base[i] == '-' ? '_' : base[i]; /* modprobe treats - and _ alike */
        out[n] = '\0';
}

static const char *find_module(const struct module_index *idx, const char *name) {
        char want[128], have[128];

        module_name_of(name, want, sizeof want);
        for (size_t i = 0; i < idx->n; i++) {
                module_name_of(idx->lines[i], have, sizeof have);
                if (strcmp(want, have) == 0)
                        return idx->lines[i];
        }
        return NULL;
}

struct resolve {
        const struct module_index *idx;
        char *out;
        size_t len, count;
        int depth;
};

static bool already_listed(const struct resolve *rs, const char *path, size_t path_len) {
        for (const char *p = rs->out; p && *p;) {
                size_t n = strcspn(p, "\n");
                if (n == path_len && strncmp(p, path, n) == 0)
                        return true;
                p += n + (p[n] ? 1 : 0);
        }
        return false;
}

/* Depth-first: dependencies first, then the module itself. */
static int visit(struct resolve *rs, const char *name) {
        const char *line = find_module(rs->idx, name);
        if (!line)
                return -ENOENT;
        size_t path_len = strcspn(line, ":");
        if (already_listed(rs, line, path_len))
                return 0;
        if (++rs->depth > 64)
                return -ELOOP;
        const char *deps = line + path_len + (line[path_len] ? 1 : 0);
        for (const char *p = deps; *p;) {
                while (*p == ' ')
                        p++;
                size_t n = strcspn(p, " ");
                if (n > 0) {
                        char dep[256];
                        snprintf(dep, sizeof dep, "%.*s", (int)n, p);
                        int r = visit(rs, dep);
                        if (r < 0)
                                return r;
                }
                p += n;
        }
        rs->depth--;
        char *grown = realloc(rs->out, rs->len + path_len + 2);
        if (!grown)
                return -ENOMEM;
        rs->out = grown;
        memcpy(rs->out + rs->len, line, path_len);
        rs->len += path_len;
        rs->out[rs->len++] = '\n';
        rs->out[rs->len] = '\0';
        rs->count++;
        return 0;
}

/* Whether modules.softdep asks for `earlier` before `module` ("softdep ext4
 * pre: crypto-crc32c"), by module name or through modules.alias ("alias
 * crypto-crc32c crc32c_generic"): modules the kernel looks up by name at run
 * time, which modules.dep does not list. */
static bool soft_pre_dep(const char *softdep, const char *alias, const char *module, const char *earlier) {
        char head[160];
        int n = snprintf(head, sizeof head, "softdep %s pre:", module);

        for (const char *line = softdep; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
                if (strncmp(line, head, (size_t)n) != 0)
                        continue;
                for (const char *p = line + n; *p && *p != '\n';) {
                        p += strspn(p, " ");
                        size_t len = strcspn(p, " \n");
                        if (len == 5 && strncmp(p, "post:", 5) == 0)
                                break;
                        char want[128], pattern[300];
                        snprintf(want, sizeof want, "%.*s", (int)(len < 127 ? len : 127), p);
                        snprintf(pattern, sizeof pattern, "\nalias %s %s\n", want, earlier);
                        if (len > 0 && (strcmp(want, earlier) == 0 || (alias && strstr(alias, pattern))))
                                return true;
                        p += len;
                }
        }
        return false;
}

/* "path: dep dep" for each module of the ordered list: what modules.dep says
 * it needs, and any earlier module modules.softdep asks for. */
static int add_load_deps(const char *modules_dir, const struct module_index *idx, const char *order, char **ret) {
        _cleanup_free_ char *softdep = NULL, *alias_text = NULL, *alias = NULL;
        char path[1024], name[128], earlier[1024], other[128];
        const char *mods[512];
        size_t n = 0, len, out_len = 0;
        char *out = NULL;

        snprintf(path, sizeof path, "%s/modules.softdep", modules_dir);
        if (kos_read_file_at(AT_FDCWD, path, 16 << 20, &softdep, &len) < 0)
                softdep = NULL; /* optional: a kernel without soft dependencies has none */
        snprintf(path, sizeof path, "%s/modules.alias", modules_dir);
        if (kos_read_file_at(AT_FDCWD, path, 64 << 20, &alias_text, &len) >= 0 && (alias = malloc(len + 2))) {
                alias[0] = '\n'; /* so that every line starts after a newline */
                memcpy(alias + 1, alias_text, len + 1);
        }
        for (const char *p = order; *p && n < ELEMENTSOF(mods); p += strcspn(p, "\n") + 1)
                mods[n++] = p;
        FILE *f = open_memstream(&out, &out_len);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                snprintf(path, sizeof path, "%.*s", (int)strcspn(mods[i], "\n"), mods[i]);
                /* modules.dep's line already is "path: deps". */
                const char *line = find_module(idx, path), *deps = line ? line + strcspn(line, ":") : "";
                fprintf(f, "%s:%s", path, *deps ? deps + 1 : "");
                module_name_of(path, name, sizeof name);
                for (size_t j = 0; j < i; j++) {
                        snprintf(earlier, sizeof earlier, "%.*s", (int)strcspn(mods[j], "\n"), mods[j]);
                        module_name_of(earlier, other, sizeof other);
                        if (soft_pre_dep(softdep, alias, name, other))
                                fprintf(f, " %s", earlier);
                }
                fputc('\n', f);
        }
        if (fclose(f) != 0 || !out) {
                free(out);
                return -ENOMEM;
        }
        *ret = out;
        return 0;
}

int modules_resolve(const char *modules_dir, const char *const *names, size_t n_names, char **ret_list,
                    size_t *ret_count) {
        struct module_index *idx = calloc(1, sizeof *idx);
        struct resolve rs = {.idx = idx};
        char path[1024];
        size_t len;
        int r;

        if (!idx)
                return -ENOMEM;
        snprintf(path, sizeof path, "%s/modules.dep", modules_dir);
        r = kos_read_file_at(AT_FDCWD, path, 16 << 20, &idx->text, &len);
        for (char *line = r >= 0 ? strtok(idx->text, "\n") : NULL; line && idx->n < ELEMENTSOF(idx->lines);
             line = strtok(NULL, "\n"))
                idx->lines[idx->n++] = line;
        for (size_t i = 0; r >= 0 && i < n_names; i++) {
                r = visit(&rs, names[i]);
                if (r == -ENOENT)
                        fprintf(stderr, "kos: module %s is not in %s\n", names[i], path);
        }
        if (r >= 0)
                r = add_load_deps(modules_dir, idx, rs.out ? rs.out : "", ret_list);
        free(rs.out);
        free(idx->text);
        free(idx);
        if (r < 0)
                return r;
        *ret_count = rs.count;
        return 0;
}
