// An edge node driven by the platform test: Eclipse Tahu's Node.js
// Sparkplug client (sparkplug-client, unmodified) publishing what the test
// asks for, and a second MQTT client recording what the broker delivers.
//
//   node tahu_edge_node.js MQTT_URL GROUP EDGE_NODE HOST_ID
//
// Commands on stdin, one JSON object a line:
//   {"op":"connect"}                          the client connects (prints "connected")
//   {"op":"birth","metrics":[…]}              NBIRTH with these metrics (bdSeq added by the client)
//   {"op":"data","metrics":[…]}               NDATA
//   {"op":"device_birth","device":…,"metrics":[…]}  DBIRTH of that device
//   {"op":"device_death","device":…}          DDEATH of that device
//   {"op":"skip_seq"}                         the next message's seq skips one number, as a
//                                             message lost on the way would leave it
//   {"op":"stop"}                             NDEATH, then a clean disconnect
// A metric is Tahu's: {"name"|"alias", "type", "value", "timestamp", "isHistorical"}.
// On an NCMD with Node Control/Rebirth = true, the node publishes its last
// birth again (as Tahu's example edge node does) and prints "rebirth".
//
// Prints one JSON object a line: {"event": "connected" | "ncmd" | "rebirth" | "stopped"},
// and every message the recorder receives: {"seen": topic, "retain": bool,
// "text": payload as UTF-8 (STATE) , "hex": payload}.
'use strict';

const readline = require('readline');
const mqtt = require('mqtt');
const sparkplug = require('sparkplug-client');

const [url, group, edgeNode, hostId] = process.argv.slice(2);
if (!url || !group || !edgeNode || !hostId) {
  console.error('usage: node tahu_edge_node.js MQTT_URL GROUP EDGE_NODE HOST_ID');
  process.exit(2);
}

const say = (object) => process.stdout.write(`${JSON.stringify(object)}\n`);

const recorder = mqtt.connect(url, { clientId: `stoker-edge-recorder-${process.pid}`, clean: true });
recorder.on('error', (error) => {
  console.error(`recorder: ${error.message}`);
  process.exit(1);
});
recorder.on('message', (topic, payload, packet) => {
  say({ seen: topic, retain: packet.retain, text: payload.toString('utf8'), hex: payload.toString('hex') });
});
recorder.subscribe([`spBv1.0/${group}/#`, `spBv1.0/STATE/${hostId}`], { qos: 1 }, (error) => {
  if (error) {
    console.error(`recorder: subscribe failed: ${error.message}`);
    process.exit(1);
  }
  say({ event: 'recording' });
});

let client = null;
let lastBirth = null;
const clone = (metrics) => metrics.map((metric) => ({ ...metric }));

function connect() {
  client = sparkplug.newClient({
    serverUrl: url,
    username: 'tahu-edge',
    password: 'unused',
    groupId: group,
    edgeNode,
    clientId: `stoker-edge-${process.pid}`,
    publishDeath: true,
    version: 'spBv1.0',
  });
  client.on('error', (error) => {
    console.error(`sparkplug-client: ${error.message}`);
    process.exit(1);
  });
  client.on('birth', () => say({ event: 'connected' }));
  client.on('ncmd', (payload) => {
    const metrics = (payload.metrics || []).map((metric) => ({ name: metric.name, value: metric.value }));
    say({ event: 'ncmd', metrics });
    const rebirth = metrics.some((metric) => metric.name === 'Node Control/Rebirth' && metric.value === true);
    if (rebirth && lastBirth) {
      client.publishNodeBirth({ timestamp: Date.now(), metrics: clone(lastBirth) });
      say({ event: 'rebirth' });
    }
  });
}

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const command = JSON.parse(line);
  switch (command.op) {
    case 'connect':
      connect();
      break;
    case 'birth':
      lastBirth = clone(command.metrics);
      client.publishNodeBirth({ timestamp: Date.now(), metrics: clone(command.metrics) });
      break;
    case 'data':
      client.publishNodeData({ timestamp: Date.now(), metrics: command.metrics });
      break;
    case 'device_birth':
      client.publishDeviceBirth(command.device, { timestamp: Date.now(), metrics: command.metrics });
      break;
    case 'device_death':
      client.publishDeviceDeath(command.device, { timestamp: Date.now() });
      break;
    case 'skip_seq':
      client.seq += 1;
      break;
    case 'stop':
      client.stop();
      say({ event: 'stopped' });
      break;
    default:
      console.error(`unknown command ${line}`);
      process.exit(2);
  }
});
lines.on('close', () => {
  recorder.end(true, () => process.exit(0));
});
