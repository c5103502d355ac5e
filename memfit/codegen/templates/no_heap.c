/* Linked into the no-heap check with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free:
 * every call of these from the generated model, the runtime or main.c lands here and aborts. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

static void refuse(const char* function) {
    fprintf(stderr, "memfit no-heap check: %s called\n", function);
    abort();
}

void* __wrap_malloc(size_t size);
void* __wrap_calloc(size_t count, size_t size);
void* __wrap_realloc(void* pointer, size_t size);
void __wrap_free(void* pointer);

void* __wrap_malloc(size_t size) {
    (void)size;
    refuse("malloc");
    return NULL;
}

void* __wrap_calloc(size_t count, size_t size) {
    (void)count;
    (void)size;
    refuse("calloc");
    return NULL;
}

void* __wrap_realloc(void* pointer, size_t size) {
    (void)pointer;
    (void)size;
    refuse("realloc");
    return NULL;
}

void __wrap_free(void* pointer) {
    (void)pointer;
    refuse("free");
}
