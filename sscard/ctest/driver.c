//go:build ignore

// (Excluded from the Go package: the tests compile it with gcc.)

/*
 * driver.c: a C program that uses libsscard.so the way a HIS program uses
 * SSCardDriver.dll: dlopen, dlsym by the national names, 1024-byte
 * buffers. sscard/ctest's Go tests build it with gcc and drive it over
 * stdin, one command per line; it answers one line per command with the
 * return code and the output bytes in hex (GBK, compared byte for byte by
 * the test):
 *
 *   bas T | step1 T | verify T | change T    -> rc N OUTHEX
 *   step2 KEY                                -> rc N OUTHEX
 *   readcard T A CARDINFO FILEADDR           -> rc N OUTHEX   ("-" = empty)
 *   debit T CARDINFO PAYINFO                 -> rc N OUTHEX
 *   info                                     -> rc N SNHEX TERMHEX
 *   pin - | pin cancel | pin PIN [NEWPIN]    -> ok   (PIN callback)
 *   threads N M T                            -> threads ok=X bad=Y
 *       N pthreads call iReadCardBas(T) M times each; every output must
 *       equal the first single-threaded call's (return code included).
 *   quit
 *
 * Every output buffer is SSCARD_BUFFER_SIZE bytes followed by a guard
 * zone; a write past the buffer prints "overflow" and exits 3.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../sscard.h"

typedef long (*fn_type_out)(int, char *);
typedef long (*fn_key_out)(char *, char *);
typedef long (*fn_readcard)(int, int, char *, char *, char *);
typedef long (*fn_debit)(int, char *, char *, char *);
typedef long (*fn_info)(char *, char *);
typedef long (*fn_setpin)(SSCardPINCallback);

static fn_type_out p_bas, p_step1, p_verify, p_change;
static fn_key_out p_step2;
static fn_readcard p_readcard;
static fn_debit p_debit;
static fn_info p_info;
static fn_setpin p_setpin;

#define GUARD 64
#define GUARD_BYTE 0xA5

typedef struct {
	char b[SSCARD_BUFFER_SIZE + GUARD];
} buffer;

static void buf_init(buffer *b) { memset(b->b, GUARD_BYTE, sizeof b->b); }

static void buf_check(const buffer *b) {
	for (int i = SSCARD_BUFFER_SIZE; i < SSCARD_BUFFER_SIZE + GUARD; i++) {
		if ((unsigned char)b->b[i] != GUARD_BYTE) {
			printf("overflow\n");
			fflush(stdout);
			exit(3);
		}
	}
	if (memchr(b->b, 0, SSCARD_BUFFER_SIZE) == NULL) {
		printf("overflow\n"); /* no terminating NUL inside the buffer */
		fflush(stdout);
		exit(3);
	}
}

static void hex(const char *s) {
	if (*s == 0) {
		printf("-");
	}
	for (; *s; s++) {
		printf("%02X", (unsigned char)*s);
	}
}

static void answer(long rc, const buffer *b) {
	buf_check(b);
	printf("rc %ld ", rc);
	hex(b->b);
	printf("\n");
}

static void *sym(void *lib, const char *name) {
	void *p = dlsym(lib, name);
	if (p == NULL) {
		fprintf(stderr, "driver: %s not exported: %s\n", name, dlerror());
		exit(2);
	}
	return p;
}

/* The PIN callback's answers. */
static char pin_old[16], pin_new[16];
static int pin_cancel;

static long pin_cb(int purpose, char *pin, int size) {
	if (pin_cancel) {
		return -31;
	}
	const char *src = purpose == SSCARD_PIN_NEW ? pin_new : pin_old;
	if ((int)strlen(src) >= size) {
		return -33;
	}
	strcpy(pin, src);
	return 0;
}

/* Thread test. */
static buffer ref;
static long ref_rc;
static int th_type, th_rounds;
static int th_bad;
static pthread_mutex_t th_mu = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg) {
	(void)arg;
	for (int i = 0; i < th_rounds; i++) {
		buffer b;
		buf_init(&b);
		long rc = p_bas(th_type, b.b);
		buf_check(&b);
		if (rc != ref_rc || strcmp(b.b, ref.b) != 0) {
			pthread_mutex_lock(&th_mu);
			th_bad++;
			pthread_mutex_unlock(&th_mu);
		}
	}
	return NULL;
}

static const char *arg(const char *s) { return strcmp(s, "-") == 0 ? "" : s; }

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: driver LIBRARY\n");
		return 2;
	}
	void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		fprintf(stderr, "driver: dlopen: %s\n", dlerror());
		return 2;
	}
	p_bas = (fn_type_out)sym(lib, "iReadCardBas");
	p_step1 = (fn_type_out)sym(lib, "iReadCardBas_HSM_Step1");
	p_step2 = (fn_key_out)sym(lib, "iReadCardBas_HSM_Step2");
	p_verify = (fn_type_out)sym(lib, "iVerifyPIN");
	p_change = (fn_type_out)sym(lib, "iChangePIN");
	p_readcard = (fn_readcard)sym(lib, "iReadCard");
	p_debit = (fn_debit)sym(lib, "iDoDebit");
	p_info = (fn_info)sym(lib, "iGetReaderInfo");
	p_setpin = (fn_setpin)sym(lib, "SetPINCallback");

	char line[4096], a[2048], c[2048], d[2048];
	int t, m, n;
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof line, stdin) != NULL) {
		buffer b;
		buf_init(&b);
		if (sscanf(line, "bas %d", &t) == 1) {
			answer(p_bas(t, b.b), &b);
		} else if (sscanf(line, "step1 %d", &t) == 1) {
			answer(p_step1(t, b.b), &b);
		} else if (sscanf(line, "step2 %2047s", a) == 1) {
			answer(p_step2(a, b.b), &b);
		} else if (sscanf(line, "verify %d", &t) == 1) {
			answer(p_verify(t, b.b), &b);
		} else if (sscanf(line, "change %d", &t) == 1) {
			answer(p_change(t, b.b), &b);
		} else if (sscanf(line, "readcard %d %d %2047s %2047s", &t, &m, a, c) == 4) {
			answer(p_readcard(t, m, (char *)arg(a), (char *)arg(c), b.b), &b);
		} else if (sscanf(line, "debit %d %2047s %2047s", &t, a, c) == 3) {
			answer(p_debit(t, (char *)arg(a), (char *)arg(c), b.b), &b);
		} else if (strncmp(line, "info", 4) == 0) {
			buffer e;
			buf_init(&e);
			long rc = p_info(b.b, e.b);
			buf_check(&b);
			buf_check(&e);
			printf("rc %ld ", rc);
			hex(b.b);
			printf(" ");
			hex(e.b);
			printf("\n");
		} else if (sscanf(line, "pin %2047s %2047s", a, d) >= 1) {
			int two = sscanf(line, "pin %2047s %2047s", a, d) == 2;
			pin_cancel = strcmp(a, "cancel") == 0;
			if (strcmp(a, "-") == 0) {
				p_setpin(NULL);
			} else {
				snprintf(pin_old, sizeof pin_old, "%.15s", a);
				snprintf(pin_new, sizeof pin_new, "%.15s", two ? d : "");
				p_setpin(pin_cb);
			}
			printf("ok\n");
		} else if (sscanf(line, "threads %d %d %d", &n, &m, &t) == 3) {
			buf_init(&ref);
			ref_rc = p_bas(t, ref.b);
			buf_check(&ref);
			th_type = t;
			th_rounds = m;
			th_bad = 0;
			pthread_t th[64];
			if (n > 64) {
				n = 64;
			}
			for (int i = 0; i < n; i++) {
				pthread_create(&th[i], NULL, worker, NULL);
			}
			for (int i = 0; i < n; i++) {
				pthread_join(th[i], NULL);
			}
			printf("threads ok=%d bad=%d rc=%ld ", n * m - th_bad, th_bad, ref_rc);
			hex(ref.b);
			printf("\n");
		} else if (strncmp(line, "quit", 4) == 0) {
			break;
		} else {
			printf("unknown\n");
		}
	}
	return 0;
}
