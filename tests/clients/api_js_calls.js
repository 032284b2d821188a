// Drives particle-api-js (Particle's own JS client, unchanged) against a fresh Fleetgate server:
// every method for a feature docs/API.md claims. Prints one JSON line per call:
// {"call": NAME, "ok": true|false, "error": "..."}; exits 0 even when calls fail (pytest judges).
//
// usage: node api_js_calls.js BASE_URL ADMIN_TOKEN FIRMWARE_V1 FIRMWARE_V2 PRODUCT_ID DEVICE_IDS(comma-separated)
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const Particle = require('particle-api-js');

const [baseUrl, adminToken, firmware1, firmware2, productArg, deviceList] = process.argv.slice(2);
const product = Number(productArg);
const [dev1, dev2, dev3] = deviceList.split(',');
const PASSWORD = 'harness-pass-1';
const STEP_TIMEOUT_MS = 10000;

const api = new Particle({ baseUrl });
const results = [];

function report(call, ok, error) {
    const line = { call, ok, error: error || '' };
    results.push(line);
    process.stdout.write(JSON.stringify(line) + '\n');
}

function describe(err) {
    if (!err) return 'failed';
    if (err.statusCode) {
        const { error, error_description: description, field } = err.body || {};
        return `HTTP ${err.statusCode}: ${JSON.stringify({ error, error_description: description, field })}`;
    }
    if (err.errorDescription) return err.errorDescription;
    return String(err.message || err);
}

function withTimeout(promise, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// One call: `fn` resolves with the client's answer; `check` throws when the answer is wrong.
async function call(name, fn, check) {
    try {
        const answer = await withTimeout(fn(), name);
        if (check) check(answer);
        report(name, true);
        return answer;
    } catch (err) {
        report(name, false, describe(err));
        return undefined;
    }
}

function expect(condition, message) {
    if (!condition) throw new Error(message);
}

// Set-up the client has no method for (products and groups are console pages at Particle).
async function raw(method, uri, token, body) {
    const resp = await fetch(`${baseUrl}${uri}`, {
        method,
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!resp.ok) throw new Error(`set-up ${method} ${uri}: HTTP ${resp.status} ${await resp.text()}`);
    return resp.json();
}

// Opens a stream, runs `publish`, and resolves once an event named `name` arrives.
async function streamSees(streamArgs, name, publish) {
    const stream = await api.getEventStream(streamArgs);
    try {
        const seen = new Promise((resolve) => {
            stream.on('event', (event) => {
                if (event.name === name) resolve(event);
            });
        });
        await publish();
        return await seen;
    } finally {
        stream.abort();
    }
}

async function main() {
    // Users and tokens.
    api.setDefaultAuth(adminToken);  // createUser takes no `auth`: it sends the default token
    await call('createUser', () => api.createUser({ username: 'alice', password: PASSWORD }));
    await call('createUser', () => api.createUser({ username: 'bob', password: PASSWORD }));
    const login = await call('login', () => api.login({ username: 'alice', password: PASSWORD }),
        (r) => expect(r.body.access_token, 'no access_token'));
    if (!login) return;
    const auth = login.body.access_token;
    api.setDefaultAuth(auth);
    await call('getUserInfo', () => api.getUserInfo({ auth }), (r) => expect(r.body.username === 'alice', 'not alice'));

    // Only a server admin may choose a product ID (the firmware binaries have it compiled in).
    await raw('POST', '/v1/products', adminToken, { name: 'Harness Lamp', id: product });
    await raw('POST', `/v1/products/${product}/team`, adminToken, { username: 'alice', role: 'administrator' });
    const productSlug = 'harness-lamp';
    const mine = await call('listProducts', () => api.listProducts({ auth }),
        (r) => expect(r.body.products.some((p) => p.slug === productSlug), 'product not listed'));
    const pid = mine ? mine.body.products.find((p) => p.slug === productSlug).id : product;
    expect(pid === product, `the harness expects product ${product}, got ${pid}`);
    await call('getProduct', () => api.getProduct({ product, auth }), (r) => expect(r.body.product.id === product, 'wrong product'));

    // Devices: pre-add one, import two from a file.
    await call('addDeviceToProduct (id)', () => api.addDeviceToProduct({ deviceId: dev1, product, auth }),
        (r) => expect(r.body.updatedDeviceIds.includes(dev1), 'not added'));
    const list = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'harness-')), 'ids.txt');
    fs.writeFileSync(list, `${dev2}\n${dev3}\n`);
    await call('addDeviceToProduct (file)', () => api.addDeviceToProduct({ file: list, product, auth }),
        (r) => expect(r.body.updatedDeviceIds.length === 2, 'not imported'));
    await raw('POST', `/v1/products/${product}/groups`, auth, { name: 'beta' });
    await raw('PUT', `/v1/products/${product}/devices/${dev2}`, auth, { groups: ['beta'], name: 'hall lamp' });

    await call('listDevices (product)', () => api.listDevices({ product, auth }),
        (r) => expect(r.body.devices.length === 3, `expected 3 devices, got ${r.body.devices.length}`));
    await call('listDevices (product, deviceId)', () => api.listDevices({ product, deviceId: dev1, auth }),
        (r) => expect(r.body.devices.length === 1 && r.body.devices[0].id === dev1,
            `expected only ${dev1}, got ${r.body.devices.map((d) => d.id)}`));
    await call('listDevices (product, groups)', () => api.listDevices({ product, groups: ['beta'], auth }),
        (r) => expect(r.body.devices.length === 1 && r.body.devices[0].id === dev2,
            `expected only ${dev2}, got ${r.body.devices.map((d) => d.id)}`));
    await call('listDevices (product, deviceName, sortAttr)', () => api.listDevices({
        product, deviceName: 'HALL', sortAttr: 'deviceId', sortDir: 'desc', auth,
    }), (r) => expect(r.body.devices.length === 1 && r.body.devices[0].id === dev2,
        `expected only ${dev2}, got ${r.body.devices.map((d) => d.id)}`));
    await call('listDevices (product, page)', () => api.listDevices({ product, page: 2, perPage: 2, auth }),
        (r) => expect(r.body.devices.length === 1, `expected 1 device on page 2, got ${r.body.devices.length}`));
    await call('listDevices', () => api.listDevices({ auth }), (r) => expect(r.body.length === 3, 'expected 3 devices'));
    await call('getDevice (product)', () => api.getDevice({ deviceId: dev1, product, auth }),
        (r) => expect(r.body.id === dev1, 'wrong device'));
    await call('getDevice', () => api.getDevice({ deviceId: dev1, auth }), (r) => expect(r.body.id === dev1, 'wrong device'));
    await call('renameDevice', () => api.renameDevice({ deviceId: dev1, name: 'kitchen', product, auth }),
        (r) => expect(r.body.name === 'kitchen', 'not renamed'));
    await call('setDeviceNotes', () => api.setDeviceNotes({ deviceId: dev1, notes: 'by the window', product, auth }),
        (r) => expect(r.body.notes === 'by the window', 'no notes'));
    await call('markAsDevelopmentDevice', () => api.markAsDevelopmentDevice({ deviceId: dev1, product, auth }),
        (r) => expect(r.body.development === true, 'not development'));
    await call('updateDevice', () => api.updateDevice({ deviceId: dev1, development: false, product, auth }),
        (r) => expect(r.body.development === false, 'still development'));

    // Firmware.
    await call('uploadProductFirmware', () => api.uploadProductFirmware({
        file: fs.readFileSync(firmware1), version: 1, title: 'Lamp 1', description: 'first', product, auth,
    }), (r) => expect(r.body.version === 1, 'not version 1'));
    await call('uploadProductFirmware (path)', () => api.uploadProductFirmware({
        file: firmware2, version: 2, title: 'Lamp 2', product, auth,
    }), (r) => expect(r.body.version === 2, 'not version 2'));
    await call('listProductFirmware', () => api.listProductFirmware({ product, auth }),
        (r) => expect(r.body.length === 2, 'expected 2 versions'));
    await call('getProductFirmware', () => api.getProductFirmware({ version: 1, product, auth }),
        (r) => expect(r.body.title === 'Lamp 1', 'wrong title'));
    await call('updateProductFirmware', () => api.updateProductFirmware({
        version: 1, title: 'Lamp one', description: 'renamed', product, auth,
    }), (r) => expect(r.body.title === 'Lamp one' && r.body.description === 'renamed', 'not updated'));
    await call('downloadProductFirmware', () => api.downloadProductFirmware({ version: 1, product, auth }),
        (r) => expect(Buffer.from(r).equals(fs.readFileSync(firmware1)), 'binary differs'));
    await call('releaseProductFirmware', () => api.releaseProductFirmware({ version: 1, product, product_default: true, auth }),
        (r) => expect(r.body.product_default === true, 'not the default'));
    await call('lockDeviceProductFirmware', () => api.lockDeviceProductFirmware({
        deviceId: dev1, desiredFirmwareVersion: 2, product, auth,
    }));
    await call('unlockDeviceProductFirmware', () => api.unlockDeviceProductFirmware({ deviceId: dev1, product, auth }));

    // Team and customers.
    await call('listTeamMembers', () => api.listTeamMembers({ product, auth }),
        (r) => expect(r.body.team.some((m) => m.username === 'alice'), 'alice missing'));
    await call('inviteTeamMember', () => api.inviteTeamMember({ username: 'bob', product, auth }),
        (r) => expect(r.body.member.role === 'view_only', `role ${r.body.member && r.body.member.role}`));
    await call('removeTeamMember', () => api.removeTeamMember({ username: 'bob', product, auth }));
    await call('createCustomer', () => api.createCustomer({ email: 'kim@example.com', password: PASSWORD, product, auth }));
    const customer = await call('login (customer)', () => api.login({ username: 'kim@example.com', password: PASSWORD }));
    if (customer) {
        await call('getClaimCode', () => api.getClaimCode({ product, auth: customer.body.access_token }),
            (r) => expect(r.body.claim_code, 'no claim code'));
    }
    await raw('PUT', `/v1/products/${product}/devices/${dev3}/owner`, auth, { user: 'alice' });
    await call('removeDeviceOwner', () => api.removeDeviceOwner({ deviceId: dev3, product, auth }));

    // Events: publish as a user and see it arrive on the streams.
    await call('publishEvent (product)', () => api.publishEvent({ name: 'ops/notice', data: 'hi', isPrivate: true, product, auth }));
    await call('getEventStream (product)', () => streamSees({ product, auth }, 'ops/stream',
        () => api.publishEvent({ name: 'ops/stream', data: '1', isPrivate: true, product, auth })));
    await call('getEventStream (product, name)', () => streamSees({ product, name: 'ops', auth }, 'ops/named',
        () => api.publishEvent({ name: 'ops/named', data: '2', isPrivate: true, product, auth })));
    await call('publishEvent', () => api.publishEvent({ name: 'user/hello', data: 'world', isPrivate: true, auth }));
    await call('getEventStream (mine)', () => streamSees({ deviceId: 'mine', auth }, 'user/mine',
        () => api.publishEvent({ name: 'user/mine', data: '3', isPrivate: true, auth })));
    await call('getEventStream (device)', async () => {
        const stream = await api.getEventStream({ deviceId: dev1, auth });
        stream.abort();
    });
    await call('getEventStream (product, device)', async () => {
        const stream = await api.getEventStream({ deviceId: dev1, product, auth });
        stream.abort();
    });

    // Webhooks.
    const hook = await call('createWebhook (product)', () => api.createWebhook({
        event: 'temp', url: 'http://127.0.0.1:9/hook', product, auth,
    }), (r) => expect(r.body.id, 'no id'));
    await call('listWebhooks (product)', () => api.listWebhooks({ product, auth }),
        (r) => expect(r.body.webhooks.length === 1, 'expected 1 webhook'));
    await call('listWebhooks', () => api.listWebhooks({ auth }), (r) => expect(r.body.length === 1, 'expected 1 webhook'));
    if (hook) {
        await call('deleteWebhook (product)', () => api.deleteWebhook({ hookId: hook.body.id, product, auth }));
    }

    // Removing devices, then tokens.
    await call('removeDevice (deny)', () => api.removeDevice({ deviceId: dev2, deny: true, product, auth }));
    await call('removeDevice', () => api.removeDevice({ deviceId: dev3, product, auth }));
    const spare = await api.login({ username: 'alice', password: PASSWORD });
    await call('deleteAccessToken', () => api.deleteAccessToken({ token: spare.body.access_token, auth }));
    await call('deleteCurrentAccessToken', () => api.deleteCurrentAccessToken({ auth }));
}

main().then(
    () => process.exit(0),
    (err) => {
        report('harness', false, describe(err));
        process.exit(0);
    },
);
