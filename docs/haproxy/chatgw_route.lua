-- The node of a fleet a user's connections go to: jump consistent hash of
-- the numeric user id over the nodes in their listed order, the same as
-- `chatgw route --user N --nodes a,b,c` (gateway/src/affinity.rs).
-- Lua 5.3 (HAProxy's): integers wrap modulo 2^64 and `>>` is a logical shift,
-- as the paper's C++ needs. Ids up to 2^63 - 1.
--
-- Use as a converter: url_param(user),lua.chatgw_node(a,b,c)
-- It returns the node's name, or nothing for a missing or non-numeric id
-- (the backend's balance algorithm then decides).

local function jump(key, buckets)
    local b, j = -1, 0
    while j < buckets do
        b = j
        key = key * 2862933555777941757 + 1
        j = math.floor((b + 1) * (2147483648.0 / ((key >> 33) + 1)))
    end
    return b
end

core.register_converters("chatgw_node", function(user, ...)
    local nodes = { ... }
    local key = math.tointeger(tonumber(user or ""))
    if key == nil or key < 0 or #nodes == 0 then
        return nil
    end
    return nodes[jump(key, #nodes) + 1]
end)
