/* SPDX-License-Identifier: MIT */
#include "oci-registry.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOKEN_RESPONSE_MAX (64u << 10)
#define ERROR_BODY_MAX 512
#define HEADER_VALUE_MAX 4096

enum auth_mode { AUTH_NONE, AUTH_BASIC, AUTH_BEARER };

struct kos_oci_client {
        CURL *curl;
        struct kos_oci_ref ref;
        char base[KOS_OCI_HOST_MAX + 16]; /* scheme://host[:port] */
        char *credentials;
        char *ca_file;
        enum auth_mode auth;
        char *token;
        char error[512];
};

/* One request and what came back. */
struct request {
        CURL *curl;
        const char *method; /* GET, HEAD, POST, PUT */
        const char *url;    /* absolute */
        const char *accept, *content_type;
        const void *body; /* PUT data, or NULL with body_fd */
        int body_fd;
        uint64_t body_size, body_pos;
        uint64_t range_from;
        kos_oci_body_fn sink; /* the body of a 2xx answer; others go to error_body */
        void *userdata;
        int sink_error;
        uint64_t skip; /* bytes of the body to drop (a 200 answer to a Range request) */
        long status;
        char location[HEADER_VALUE_MAX], challenge[HEADER_VALUE_MAX];
        char error_body[ERROR_BODY_MAX];
        size_t error_body_len;
};

static int set_error(struct kos_oci_client *c, int r, const char *format, ...) __attribute__((format(printf, 3, 4)));
static int set_error(struct kos_oci_client *c, int r, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vsnprintf(c->error, sizeof c->error, format, ap);
        va_end(ap);
        return r;
}

const char *kos_oci_client_error(const struct kos_oci_client *c) {
        return c->error[0] ? c->error : "no error";
}

/* --- References ----------------------------------------------------------- */

static bool is_lower_alnum(char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/* One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*. */
static bool repository_component_valid(const char *s, size_t len) {
        size_t i = 0;

        if (len == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1]))
                return false;
        while (i < len) {
                if (is_lower_alnum(s[i])) {
                        i++;
                        continue;
                }
                size_t run = 0;
                while (i + run < len && !is_lower_alnum(s[i + run]))
                        run++;
                bool ok = (run == 1 && (s[i] == '.' || s[i] == '_' || s[i] == '-')) || (run == 2 && s[i] == '_' && s[i + 1] == '_') ||
                          strspn(s + i, "-") >= run;
                if (!ok)
                        return false;
                i += run;
        }
        return true;
}

static bool repository_valid(const char *s) {
        for (;;) {
                const char *slash = strchr(s, '/');
                size_t len = slash ? (size_t)(slash - s) : strlen(s);
                if (!repository_component_valid(s, len))
                        return false;
                if (!slash)
                        return true;
                s = slash + 1;
        }
}

static bool tag_valid(const char *s) {
        size_t len = strlen(s);

        if (len == 0 || len > KOS_OCI_TAG_MAX || strchr(".-", s[0]))
                return false;
        return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == len;
}

static bool host_valid(const char *s, size_t len) {
        return len > 0 && len <= KOS_OCI_HOST_MAX &&
               strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-:[]") >= len;
}

int kos_oci_ref_parse(const char *s, struct kos_oci_ref *ret, char *ret_why, size_t why_size) {
        *ret = (struct kos_oci_ref){0};
        if (strncmp(s, "http://", 7) == 0) {
                ret->plain_http = true;
                s += 7;
        } else if (strncmp(s, "https://", 8) == 0)
                s += 8;
        const char *slash = strchr(s, '/');
        if (!slash || !host_valid(s, (size_t)(slash - s))) {
                snprintf(ret_why, why_size, "expected [http[s]://]HOST[:PORT]/REPOSITORY:TAG");
                return -EINVAL;
        }
        memcpy(ret->host, s, (size_t)(slash - s));
        const char *path = slash + 1, *colon = strrchr(path, ':');
        if (!colon || strchr(colon, '/')) {
                snprintf(ret_why, why_size, "no :TAG after the repository");
                return -EINVAL;
        }
        size_t repo_len = (size_t)(colon - path);
        if (repo_len == 0 || repo_len > KOS_OCI_REPOSITORY_MAX) {
                snprintf(ret_why, why_size, "the repository is empty or longer than %d characters", KOS_OCI_REPOSITORY_MAX);
                return -EINVAL;
        }
        memcpy(ret->repository, path, repo_len);
        if (!repository_valid(ret->repository)) {
                snprintf(ret_why, why_size, "repository \"%s\" is not lowercase [a-z0-9] components separated by / . _ -",
                         ret->repository);
                return -EINVAL;
        }
        if (!tag_valid(colon + 1)) {
                snprintf(ret_why, why_size, "tag \"%.130s\" is not [A-Za-z0-9_][A-Za-z0-9._-]{0,127}", colon + 1);
                return -EINVAL;
        }
        snprintf(ret->tag, sizeof ret->tag, "%s", colon + 1);
        return 0;
}

/* --- The client ----------------------------------------------------------- */

int kos_oci_client_new(const struct kos_oci_ref *ref, const struct kos_oci_client_options *options,
                       struct kos_oci_client **ret) {
        static bool initialised;
        struct kos_oci_client *c;

        if (!initialised) {
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                        return -ENOMEM;
                initialised = true;
        }
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->ref = *ref;
        snprintf(c->base, sizeof c->base, "%s://%s", ref->plain_http ? "http" : "https", ref->host);
        c->curl = curl_easy_init();
        if (!c->curl || (options->credentials && !(c->credentials = strdup(options->credentials))) ||
            (options->ca_file && !(c->ca_file = strdup(options->ca_file)))) {
                kos_oci_client_free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

void kos_oci_client_free(struct kos_oci_client *c) {
        if (!c)
                return;
        if (c->curl)
                curl_easy_cleanup(c->curl);
        if (c->credentials)
                explicit_bzero(c->credentials, strlen(c->credentials));
        free(c->credentials);
        free(c->ca_file);
        free(c->token);
        free(c);
}

static void copy_header_value(char *dst, const char *value, size_t len) {
        while (len > 0 && (value[0] == ' ' || value[0] == '\t'))
                value++, len--;
        while (len > 0 && (value[len - 1] == '\r' || value[len - 1] == '\n' || value[len - 1] == ' '))
                len--;
        if (len >= HEADER_VALUE_MAX)
                len = HEADER_VALUE_MAX - 1;
        memcpy(dst, value, len);
        dst[len] = '\0';
}

static size_t on_header(char *data, size_t size, size_t n, void *userdata) {
        struct request *rq = userdata;
        size_t len = size * n;

        if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
                /* A new response (after a redirect or a 100 Continue): forget the last one's headers. */
                rq->location[0] = rq->challenge[0] = '\0';
        } else if (len > 9 && strncasecmp(data, "location:", 9) == 0)
                copy_header_value(rq->location, data + 9, len - 9);
        else if (len > 17 && strncasecmp(data, "www-authenticate:", 17) == 0)
                copy_header_value(rq->challenge, data + 17, len - 17);
        return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *userdata) {
        struct request *rq = userdata;
        size_t len = size * n, used = 0;
        long status = 0;

        (void)curl_easy_getinfo(rq->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status > 299 || !rq->sink) {
                /* An error's body: keep the start of it for the message. */
                size_t room = sizeof rq->error_body - 1 - rq->error_body_len, take = len < room ? len : room;
                memcpy(rq->error_body + rq->error_body_len, data, take);
                rq->error_body_len += take;
                rq->error_body[rq->error_body_len] = '\0';
                return len;
        }
        if (status == 200 && rq->skip > 0) {
                used = rq->skip < len ? (size_t)rq->skip : len;
                rq->skip -= used;
        }
        if (used < len && (rq->sink_error = rq->sink(data + used, len - used, rq->userdata)) < 0)
                return 0; /* stops the transfer: CURLE_WRITE_ERROR */
        return len;
}

static size_t on_upload(char *buffer, size_t size, size_t n, void *userdata) {
        struct request *rq = userdata;
        size_t want = size * n;
        uint64_t left = rq->body_size - rq->body_pos;

        if (want > left)
                want = (size_t)left;
        if (rq->body) {
                memcpy(buffer, (const uint8_t *)rq->body + rq->body_pos, want);
                rq->body_pos += want;
                return want;
        }
        ssize_t got = pread(rq->body_fd, buffer, want, (off_t)rq->body_pos);
        if (got < 0 || (got == 0 && want > 0))
                return CURL_READFUNC_ABORT;
        rq->body_pos += (uint64_t)got;
        return (size_t)got;
}

/* Lets curl rewind an upload (it does when it must send the body again). */
static int on_seek(void *userdata, curl_off_t offset, int origin) {
        struct request *rq = userdata;

        if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > rq->body_size)
                return CURL_SEEKFUNC_FAIL;
        rq->body_pos = (uint64_t)offset;
        return CURL_SEEKFUNC_OK;
}

static int add_header(struct curl_slist **list, const char *format, ...) __attribute__((format(printf, 2, 3)));
static int add_header(struct curl_slist **list, const char *format, ...) {
        _cleanup_free_ char *line = NULL;
        va_list ap;
        int n;

        va_start(ap, format);
        n = vasprintf(&line, format, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        struct curl_slist *l = curl_slist_append(*list, line);
        if (!l)
                return -ENOMEM;
        *list = l;
        return 0;
}

static int build_headers(struct kos_oci_client *c, const struct request *rq, struct curl_slist **ret) {
        int r = 0;

        if (rq->accept)
                r = add_header(ret, "Accept: %s", rq->accept);
        if (r >= 0 && rq->content_type)
                r = add_header(ret, "Content-Type: %s", rq->content_type);
        if (r >= 0 && rq->range_from > 0)
                r = add_header(ret, "Range: bytes=%llu-", (unsigned long long)rq->range_from);
        if (r >= 0 && c->auth == AUTH_BEARER)
                r = add_header(ret, "Authorization: Bearer %s", c->token);
        /* curl adds "Expect: 100-continue" to large PUTs; registries answer
         * the PUT itself, so skip the wait. */
        if (r >= 0 && (rq->body || rq->body_fd >= 0))
                r = add_header(ret, "Expect:");
        return r;
}

static void setup_transfer(struct kos_oci_client *c, struct request *rq, struct curl_slist *headers) {
        CURL *h = c->curl;

        curl_easy_reset(h);
        rq->curl = h;
        curl_easy_setopt(h, CURLOPT_URL, rq->url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        /* Registries may send blobs from elsewhere (a CDN): follow, but credentials stay with the registry's host. */
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, rq->method[0] == 'G' || rq->method[0] == 'H' ? 1L : 0L);
        curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
        curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
        if (c->ca_file)
                curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
        /* A stalled transfer (under 1 byte/s for 60 s) fails; a slow one does not. */
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "kos");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, rq);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, rq);
        if (c->auth == AUTH_BASIC) {
                curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
                curl_easy_setopt(h, CURLOPT_USERPWD, c->credentials);
        }
        if (strcmp(rq->method, "HEAD") == 0)
                curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        else if (strcmp(rq->method, "POST") == 0) {
                curl_easy_setopt(h, CURLOPT_POST, 1L);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        } else if (strcmp(rq->method, "PUT") == 0) {
                curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
                curl_easy_setopt(h, CURLOPT_READFUNCTION, on_upload);
                curl_easy_setopt(h, CURLOPT_READDATA, rq);
                curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
                curl_easy_setopt(h, CURLOPT_SEEKDATA, rq);
                curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_size);
        }
}

/* One attempt. 0 with rq->status set, or a negative errno (c->error says why). */
static int perform_once(struct kos_oci_client *c, struct request *rq) {
        struct curl_slist *headers = NULL;
        char curl_error[CURL_ERROR_SIZE] = "";
        int r = build_headers(c, rq, &headers);

        if (r < 0) {
                curl_slist_free_all(headers);
                return r;
        }
        rq->status = 0;
        rq->body_pos = 0;
        rq->error_body_len = 0;
        rq->error_body[0] = '\0';
        rq->skip = rq->range_from;
        setup_transfer(c, rq, headers);
        curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, curl_error);
        CURLcode cr = curl_easy_perform(c->curl);
        (void)curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &rq->status);
        curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
        curl_slist_free_all(headers);
        if (cr == CURLE_WRITE_ERROR && rq->sink_error < 0)
                return rq->sink_error; /* the receiver stopped it, and says why */
        if (cr != CURLE_OK)
                return set_error(c, -EIO, "%s %s: %s", rq->method, rq->url, curl_error[0] ? curl_error : curl_easy_strerror(cr));
        return 0;
}

/* --- Authentication ------------------------------------------------------- */

/* The value of key in a challenge's key="value" list, or false. */
static bool challenge_param(const char *params, const char *key, char *ret, size_t size) {
        size_t key_len = strlen(key);

        for (const char *p = params; *p;) {
                while (*p == ' ' || *p == ',')
                        p++;
                const char *eq = strchr(p, '=');
                if (!eq)
                        return false;
                bool match = (size_t)(eq - p) == key_len && strncasecmp(p, key, key_len) == 0;
                const char *v = eq + 1, *end;
                if (*v == '"') {
                        v++;
                        end = strchr(v, '"');
                        if (!end)
                                return false;
                } else
                        end = v + strcspn(v, ",");
                if (match) {
                        size_t len = (size_t)(end - v);
                        if (len >= size)
                                return false;
                        memcpy(ret, v, len);
                        ret[len] = '\0';
                        return true;
                }
                p = *end == '"' ? end + 1 : end;
        }
        return false;
}

/* A token is sent in a header: only the characters of RFC 6750's b64token. */
static bool token_valid(const char *t) {
        size_t len = strlen(t);
        return len > 0 && len < 16384 &&
               strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=") == len;
}

struct buffer {
        char *data;
        size_t len, cap;
};

static int buffer_append(const void *data, size_t len, void *userdata) {
        struct buffer *b = userdata;

        if (len > b->cap - b->len)
                return -EFBIG;
        char *p = realloc(b->data, b->len + len + 1);
        if (!p)
                return -ENOMEM;
        memcpy(p + b->len, data, len);
        b->data = p;
        b->len += len;
        b->data[b->len] = '\0';
        return 0;
}

/* After a transfer into b that ended with r: hands the body over as
 * *ret (NUL-terminated, "" for an empty one) and *ret_len, or frees it and
 * returns r when r is an error. */
static int buffer_take(struct buffer *b, int r, char **ret, size_t *ret_len) {
        if (r >= 0 && !b->data && !(b->data = calloc(1, 1)))
                r = -ENOMEM;
        if (r < 0) {
                free(b->data);
                b->data = NULL;
                return r;
        }
        *ret = TAKE_PTR(b->data);
        *ret_len = b->len;
        return 0;
}

/* The bearer-token flow (Docker's token authentication, used by every
 * public registry): GET realm?service=...&scope=... (with the credentials,
 * when there are any), answer {"token": ...} or {"access_token": ...}. */
static int fetch_token(struct kos_oci_client *c, const char *challenge) {
        char realm[HEADER_VALUE_MAX], service[1024] = "", scope[1024] = "";
        struct buffer b = {.cap = TOKEN_RESPONSE_MAX};
        _cleanup_free_ char *url = NULL;
        int r;

        if (!challenge_param(challenge, "realm", realm, sizeof realm) ||
            (strncmp(realm, "https://", 8) != 0 && strncmp(realm, "http://", 7) != 0))
                return set_error(c, -EACCES, "the registry asks for a bearer token without a usable realm");
        (void)challenge_param(challenge, "service", service, sizeof service); /* both optional */
        (void)challenge_param(challenge, "scope", scope, sizeof scope);
        char *service_q = curl_easy_escape(c->curl, service, 0), *scope_q = curl_easy_escape(c->curl, scope, 0);
        r = service_q && scope_q ? asprintf(&url, "%s%sservice=%s%s%s", realm, strchr(realm, '?') ? "&" : "?", service_q,
                                            scope[0] ? "&scope=" : "", scope[0] ? scope_q : "")
                                 : -1;
        curl_free(service_q);
        curl_free(scope_q);
        if (r < 0)
                return -ENOMEM;

        enum auth_mode saved = c->auth;
        struct request rq = {.method = "GET", .url = url, .body_fd = -1, .sink = buffer_append, .userdata = &b};
        c->auth = c->credentials ? AUTH_BASIC : AUTH_NONE;
        r = perform_once(c, &rq);
        c->auth = saved;
        if (r >= 0 && rq.status != 200)
                r = set_error(c, -EACCES, "the token service %s answered HTTP %ld%s%s", realm, rq.status,
                              rq.error_body_len ? ": " : "", rq.error_body);
        json_t *root = r >= 0 ? json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, NULL) : NULL;
        free(b.data);
        if (r < 0)
                return r;
        const char *token = json_string_value(json_object_get(root, "token"));
        if (!token)
                token = json_string_value(json_object_get(root, "access_token"));
        if (!token || !token_valid(token)) {
                json_decref(root);
                return set_error(c, -EACCES, "the token service %s gave no usable token", realm);
        }
        free(c->token);
        c->token = strdup(token);
        json_decref(root);
        if (!c->token)
                return -ENOMEM;
        c->auth = AUTH_BEARER;
        return 0;
}

/* After a 401: 1 when credentials to try again with are in place, 0 when
 * there is nothing more to try. */
static int answer_challenge(struct kos_oci_client *c, const struct request *rq) {
        if (strncasecmp(rq->challenge, "Bearer ", 7) == 0) {
                int r = fetch_token(c, rq->challenge + 7);
                return r < 0 ? r : 1;
        }
        if (strncasecmp(rq->challenge, "Basic", 5) == 0 && c->credentials && c->auth != AUTH_BASIC) {
                c->auth = AUTH_BASIC;
                return 1;
        }
        return 0;
}

/* A request, authenticating when the registry asks (at most twice: a token
 * for a wider scope may be needed after one for pulling). */
static int perform(struct kos_oci_client *c, struct request *rq) {
        for (int attempt = 0; attempt < 3; attempt++) {
                int r = perform_once(c, rq);
                if (r < 0)
                        return r;
                if (rq->status != 401)
                        return 0;
                if ((r = answer_challenge(c, rq)) < 0)
                        return r;
                if (r == 0)
                        break;
        }
        return set_error(c, -EACCES, "%s %s: HTTP 401 unauthorized%s", rq->method, rq->url,
                         c->credentials ? " (the credentials were refused)" : " (give credentials with --user or --user-file)");
}

static int http_error(struct kos_oci_client *c, struct request *rq) {
        /* The registry's error body is JSON from a peer: printed with %.200s, never parsed. */
        for (size_t i = 0; i < rq->error_body_len; i++)
                if ((unsigned char)rq->error_body[i] < 0x20 || (unsigned char)rq->error_body[i] >= 0x7f)
                        rq->error_body[i] = ' ';
        return set_error(c, rq->status == 404 ? -ENOENT : -EIO, "%s %s: HTTP %ld%s%.200s", rq->method, rq->url, rq->status,
                         rq->error_body_len ? ": " : "", rq->error_body);
}

static int api_url(struct kos_oci_client *c, const char *kind, const char *what, char **ret) {
        return asprintf(ret, "%s/v2/%s/%s/%s", c->base, c->ref.repository, kind, what) < 0 ? -ENOMEM : 0;
}

static bool digest_valid(const char *digest) {
        uint8_t raw[32];
        return strlen(digest) == KOS_OCI_DIGEST_LEN && strncmp(digest, "sha256:", 7) == 0 &&
               kos_hex_decode(digest + 7, 64, raw, sizeof raw) == 0;
}

int kos_oci_blob_exists(struct kos_oci_client *c, const char *digest) {
        _cleanup_free_ char *url = NULL;
        int r;

        if (!digest_valid(digest))
                return -EINVAL;
        if ((r = api_url(c, "blobs", digest, &url)) < 0)
                return r;
        struct request rq = {.method = "HEAD", .url = url, .body_fd = -1};
        if ((r = perform(c, &rq)) < 0)
                return r;
        if (rq.status == 200)
                return 1;
        if (rq.status == 404)
                return 0;
        return http_error(c, &rq);
}

/* The Location of an upload, absolute, with ?digest= (or &digest=) added. */
static int upload_url(struct kos_oci_client *c, const char *location, const char *digest, char **ret) {
        const char *sep = strchr(location, '?') ? "&" : "?";

        if (strncmp(location, "http://", 7) == 0 || strncmp(location, "https://", 8) == 0)
                return asprintf(ret, "%s%sdigest=%s", location, sep, digest) < 0 ? -ENOMEM : 0;
        if (location[0] != '/')
                return set_error(c, -EPROTO, "the registry answered an upload with Location \"%.200s\"", location);
        return asprintf(ret, "%s%s%sdigest=%s", c->base, location, sep, digest) < 0 ? -ENOMEM : 0;
}

int kos_oci_blob_upload(struct kos_oci_client *c, const char *digest, const void *data, int fd, uint64_t size) {
        _cleanup_free_ char *url = NULL, *put_url = NULL;
        int r;

        if (!digest_valid(digest))
                return -EINVAL;
        if (asprintf(&url, "%s/v2/%s/blobs/uploads/", c->base, c->ref.repository) < 0)
                return -ENOMEM;
        struct request post = {.method = "POST", .url = url, .body_fd = -1};
        if ((r = perform(c, &post)) < 0)
                return r;
        if (post.status != 202 || !post.location[0])
                return post.status == 202 ? set_error(c, -EPROTO, "POST %s: no Location", url) : http_error(c, &post);
        if ((r = upload_url(c, post.location, digest, &put_url)) < 0)
                return r;
        struct request put = {.method = "PUT", .url = put_url, .content_type = "application/octet-stream",
                              .body = data, .body_fd = data ? -1 : fd, .body_size = size};
        if ((r = perform(c, &put)) < 0)
                return r;
        return put.status == 201 ? 0 : http_error(c, &put);
}

int kos_oci_blob_get(struct kos_oci_client *c, const char *digest, uint64_t offset, kos_oci_body_fn body, void *userdata) {
        _cleanup_free_ char *url = NULL;
        int r;

        if (!digest_valid(digest))
                return -EINVAL;
        if ((r = api_url(c, "blobs", digest, &url)) < 0)
                return r;
        struct request rq = {.method = "GET", .url = url, .body_fd = -1, .range_from = offset, .sink = body, .userdata = userdata};
        if ((r = perform(c, &rq)) < 0)
                return r;
        if (rq.status == 200 || (rq.status == 206 && offset > 0))
                return 0;
        return http_error(c, &rq);
}

int kos_oci_blob_get_small(struct kos_oci_client *c, const char *digest, size_t cap, char **ret, size_t *ret_len) {
        struct buffer b = {.cap = cap};
        int r = kos_oci_blob_get(c, digest, 0, buffer_append, &b);

        if (r == -EFBIG)
                r = set_error(c, r, "blob %s is larger than %zu bytes", digest, cap);
        return buffer_take(&b, r, ret, ret_len);
}

int kos_oci_manifest_get(struct kos_oci_client *c, const char *media_type, size_t cap, char **ret, size_t *ret_len) {
        _cleanup_free_ char *url = NULL;
        struct buffer b = {.cap = cap};
        int r;

        if ((r = api_url(c, "manifests", c->ref.tag, &url)) < 0)
                return r;
        struct request rq = {.method = "GET", .url = url, .accept = media_type, .body_fd = -1, .sink = buffer_append,
                             .userdata = &b};
        r = perform(c, &rq);
        if (r == -EFBIG)
                r = set_error(c, r, "the manifest %s is larger than %zu bytes", url, cap);
        if (r >= 0 && rq.status != 200)
                r = http_error(c, &rq);
        return buffer_take(&b, r, ret, ret_len);
}

int kos_oci_manifest_put(struct kos_oci_client *c, const char *media_type, const char *data, size_t len) {
        _cleanup_free_ char *url = NULL;
        int r;

        if ((r = api_url(c, "manifests", c->ref.tag, &url)) < 0)
                return r;
        struct request rq = {.method = "PUT", .url = url, .content_type = media_type, .body = data, .body_fd = -1,
                             .body_size = len};
        if ((r = perform(c, &rq)) < 0)
                return r;
        return rq.status == 201 ? 0 : http_error(c, &rq);
}
