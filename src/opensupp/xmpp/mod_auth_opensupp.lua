-- mod_auth_opensupp: Prosody asks opensupp whether a password is right and whether a user exists.
--
-- Written by `opensupp xmpp setup` next to the Prosody config it writes; opensupp ships it because
-- Debian's prosody-modules has no HTTP authentication module (docs: README, "XMPP").
--
--   authentication = "opensupp"
--   opensupp_auth_url = "http://127.0.0.1:8000/xmpp/auth"   -- opensupp's endpoint (loopback only)
--   opensupp_auth_secret = "..."                             -- HTTP Basic, user "prosody"
--   opensupp_auth_timeout = 5                                -- seconds
--
-- The password travels in a POST body (never in a URL) to POST <url>/check_password, with the
-- client's address so opensupp counts attempts as its sign-in page does. The answer is "true" or
-- "false". user_exists (POST <url>/user_exists) is cached briefly. Nothing here blocks Prosody: its
-- own HTTP client is used, with a deadline of opensupp_auth_timeout seconds.
-- Accounts and passwords are managed through opensupp's partner API, never through XMPP.

local new_sasl = require "util.sasl".new;
local async = require "util.async";
local http = require "net.http";
local http_util = require "util.http";
local base64 = require "util.encodings".base64.encode;

local host = module.host;
local url = module:get_option_string("opensupp_auth_url");
local secret = module:get_option_string("opensupp_auth_secret");
local timeout = module:get_option_number("opensupp_auth_timeout", 5);
if not url or not secret then
	error("mod_auth_opensupp needs opensupp_auth_url and opensupp_auth_secret (opensupp xmpp setup writes them)");
end
url = url:gsub("/+$", "");
local authorization = "Basic " .. base64("prosody:" .. secret);

local EXISTS_SECONDS, MISSING_SECONDS = 60, 5;
local exists_cache = {};
local exists_count = 0;

local function headers_for(body)
	return {
		["Content-Type"] = "application/x-www-form-urlencoded";
		["Content-Length"] = tostring(#body);
		["Authorization"] = authorization;
	};
end

-- Prosody's own HTTP client: it never blocks the server. In an async context (SASL in a client's
-- session) the caller waits for the answer, at most `timeout` seconds; elsewhere the answer
-- arrives later, through `callback`.
local function request(path, fields, callback)
	local body = http_util.formencode(fields);
	local finished = false;
	local function finish(code, content)
		if finished then return; end
		finished = true;
		callback(code, content);
	end
	http.request(url .. path, { method = "POST"; body = body; headers = headers_for(body) },
		function (response_body, response_code)
			finish(response_code, response_body);
		end);
	module:add_timer(timeout, function () finish(nil, "timed out"); end);
end

local function post(path, fields)
	if not async.ready() then -- (a password is only checked in a client's session, which can wait)
		return nil, "not in an async context";
	end
	local wait, done = async.waiter();
	local code, content;
	request(path, fields, function (c, body)
		code, content = c, body;
		done();
	end);
	wait();
	return code, content;
end

local provider = {};

local function check(username, password, address)
	local code, answer = post("/check_password", {
		{ name = "user", value = username }; { name = "server", value = host };
		{ name = "pass", value = password }; { name = "ip", value = address or "" };
	});
	if code ~= 200 then
		module:log("warn", "opensupp did not check the password of %s: HTTP %s", username, tostring(code));
		return nil, "opensupp could not check the password";
	end
	return answer == "true";
end

function provider.test_password(username, password)
	return check(username, password, nil);
end

local function remember(username, exists)
	if exists_count > 10000 then exists_cache, exists_count = {}, 0; end
	if not exists_cache[username] then exists_count = exists_count + 1; end
	exists_cache[username] = { exists = exists; until_ = os.time() + (exists and EXISTS_SECONDS or MISSING_SECONDS) };
end

local function ask_exists(username, callback)
	request("/user_exists", { { name = "user", value = username }; { name = "server", value = host } },
		function (code, answer)
			if code ~= 200 then
				module:log("warn", "opensupp did not say whether %s exists: %s", username, tostring(code or answer));
				callback(nil);
				return;
			end
			remember(username, answer == "true");
			callback(answer == "true");
		end);
end

-- Asked when a stanza reaches an offline user, when the component adds a contact, ...: never
-- blocking. In an async context the answer is awaited; elsewhere (a component's stanza) the cache
-- answers, and on a miss an agent's address (uid<digits>) is taken to exist while opensupp is
-- asked for next time, so that a visitor's message to an offline agent is kept, not bounced.
function provider.user_exists(username)
	local cached = exists_cache[username];
	if cached and cached.until_ > os.time() then
		return cached.exists;
	end
	if async.ready() then
		local wait, done = async.waiter();
		local exists;
		ask_exists(username, function (answer) exists = answer; done(); end);
		wait();
		if exists == nil then return nil, "opensupp could not be asked"; end
		return exists;
	end
	ask_exists(username, function () end);
	if cached then return cached.exists; end
	return username:match("^uid[1-9]%d*$") ~= nil;
end

function provider.set_password()
	return nil, "Passwords are set through opensupp's partner API";
end

function provider.create_user()
	return nil, "Agents are created through opensupp's partner API";
end

function provider.delete_user()
	return nil, "Agents are deleted through opensupp's partner API";
end

function provider.users()
	return function () return nil; end;
end

function provider.get_sasl_handler(session)
	local address = session and session.ip;
	return new_sasl(host, {
		plain_test = function (_, username, password)
			return check(username, password, address), true;
		end;
	});
end

module:provides("auth", provider);
