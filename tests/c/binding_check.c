/* binding_check.c: the Lua binding's read of data through its index of members (lvalue_push_event) */
/* SPDX-License-Identifier: MIT */
/*
 * A read on memory pushes an event's data from the index the encoder
 * recorded beside it (push_indexed in csrc/lua_value.c). Lua code cannot
 * give a record that does not fit its text, so this program builds events
 * by hand: with the right record, and with records wrong in every field
 * (a value's or a key's length, a shape, the count), each of which must
 * give the same data as parsing the whole text, and leave the stack as it
 * was. Linked with the binding's sources and liblua5.4 (Makefile).
 */
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "check.h"
#include "lua_binding.h"

#define DATA "{\"a\":-12,\"sku\":\"SKU-1\",\"r\":0.5,\"n\":{\"b\":[1,\"x\"]},\"t\":true,\"e\":\"q\\\"\"}"
#define MEMBERS 6

/* A record: header and up to MEMBERS members. */
typedef struct {
    es_data_ix h;
    es_member_at m[MEMBERS + 1];
} record;

static const es_member_at right[MEMBERS] = {
    { 3, 1, ES_V_INT }, { 7, 3, ES_V_STRING }, { 3, 1, ES_V_REAL },
    { 13, 1, ES_V_OTHER }, { 4, 1, ES_V_OTHER }, { 5, 1, ES_V_OTHER },
};

static void make(record *rec, int n) {
    memset(rec, 0, sizeof *rec);
    rec->h.n = (uint16_t)n;
    rec->h.ok = 1;
    memcpy(rec->m, right, sizeof right);
}

/* Pushes the event's data as a read does, and checks every field and the
 * stack around it. */
static void check_push(lua_State *L, const record *rec, const char *what) {
    es_event ev;
    int top = lua_gettop(L);
    memset(&ev, 0, sizeof ev);
    ev.id = "0190b7a4-0000-7000-8000-000000000001";
    ev.stream = "s";
    ev.type = "T";
    ev.revision = 1;
    ev.position = 1;
    ev.data = DATA;
    ev.data_len = strlen(DATA);
    ev.metadata = "{}";
    ev.metadata_len = 2;
    ev.data_ix = rec ? &rec->h : NULL;
    lvalue_push_event(L, &ev);
    CHECK(lua_gettop(L) == top + 1, "%s: the stack grew by %d", what, lua_gettop(L) - top);
    lua_getfield(L, -1, "data");
    CHECK(lua_istable(L, -1), "%s: data is not a table", what);
    lua_getfield(L, -1, "a");
    CHECK(lua_isinteger(L, -1) && lua_tointeger(L, -1) == -12, "%s: a", what);
    lua_getfield(L, -2, "sku");
    CHECK(lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "SKU-1") == 0, "%s: sku", what);
    lua_getfield(L, -3, "r");
    CHECK(lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1) && lua_tonumber(L, -1) == 0.5, "%s: r", what);
    lua_getfield(L, -4, "n");
    lua_getfield(L, -1, "b");
    lua_rawgeti(L, -1, 2);
    CHECK(lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "x") == 0, "%s: n.b[2]", what);
    lua_getfield(L, -7, "t");
    CHECK(lua_toboolean(L, -1), "%s: t", what);
    lua_getfield(L, -8, "e");
    CHECK(lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "q\"") == 0, "%s: e", what);
    lua_pushnil(L);
    {
        int keys = 0;
        while (lua_next(L, -10)) {
            keys++;
            lua_pop(L, 1);
        }
        CHECK(keys == MEMBERS, "%s: %d keys", what, keys);
    }
    lua_settop(L, top);
}

int main(void) {
    lua_State *L = luaL_newstate();
    record rec;
    int i;
    luaL_openlibs(L);
    lvalue_setup(L);

    check_push(L, NULL, "no record");
    make(&rec, MEMBERS);
    check_push(L, &rec, "the right record");
    rec.h.ok = 0;
    check_push(L, &rec, "a record marked not ok");

    for (i = 0; i < MEMBERS; i++) {
        char what[64];
        make(&rec, MEMBERS);
        rec.m[i].vlen++;
        snprintf(what, sizeof what, "member %d's value one byte longer", i);
        check_push(L, &rec, what);
        make(&rec, MEMBERS);
        rec.m[i].vlen--;
        snprintf(what, sizeof what, "member %d's value one byte shorter", i);
        check_push(L, &rec, what);
        make(&rec, MEMBERS);
        rec.m[i].klen++;
        snprintf(what, sizeof what, "member %d's key one byte longer", i);
        check_push(L, &rec, what);
        make(&rec, MEMBERS);
        rec.m[i].vlen = 60000;
        snprintf(what, sizeof what, "member %d's value past the text", i);
        check_push(L, &rec, what);
    }
    make(&rec, MEMBERS);
    rec.m[0].shape = ES_V_STRING;          /* -12 as a string */
    check_push(L, &rec, "an integer recorded as a string");
    make(&rec, MEMBERS);
    rec.m[1].shape = ES_V_INT;             /* "SKU-1" as an integer */
    check_push(L, &rec, "a string recorded as an integer");
    make(&rec, MEMBERS);
    rec.m[1].shape = ES_V_REAL;
    check_push(L, &rec, "a string recorded as a real");
    make(&rec, MEMBERS);
    rec.m[4].shape = ES_V_INT;             /* true as an integer */
    check_push(L, &rec, "a boolean recorded as an integer");
    make(&rec, MEMBERS - 1);
    check_push(L, &rec, "a record one member short");
    make(&rec, MEMBERS + 1);
    rec.m[MEMBERS] = right[0];
    check_push(L, &rec, "a record one member long");
    make(&rec, 0);
    check_push(L, &rec, "a record of no members");

    lua_close(L);
    printf("binding_check: %d checks, %d failed\n", checks, failures);
    return failures != 0;
}
