-- mod_opensupp_isolate: every account's agents share one XMPP domain; they write to visitors
-- (opensupp's component, visitors.<domain>), to the server and to their own account (their other
-- devices included), never to another user of the domain: no message, no presence, no query.
-- Written by `opensupp xmpp setup` beside mod_auth_opensupp.

local st = require "util.stanza";
local jid_split = require "util.jid".split;

local host = module.host;
local TEXT = "Agents write to visitors here, not to other users.";

local function guard(event)
	local origin, stanza = event.origin, event.stanza;
	if origin.type ~= "c2s" or not origin.username then return; end
	local node, to_host = jid_split(stanza.attr.to);
	if node == nil or to_host ~= host or node == origin.username then return; end
	local kind = stanza.attr.type;
	if kind ~= "error" and kind ~= "result" then
		origin.send(st.error_reply(stanza, "cancel", "policy-violation", TEXT));
	end
	return true;
end

for _, name in ipairs({ "message", "presence", "iq" }) do
	module:hook("pre-" .. name .. "/bare", guard, 1000);
	module:hook("pre-" .. name .. "/full", guard, 1000);
end
