// Eclipse Tahu's Node.js Sparkplug client (sparkplug-client, unmodified)
// publishes an edge node's session to the broker: NBIRTH, DBIRTH, NDATA,
// DDATA, DDEATH, then a clean stop with its NDEATH. A second MQTT client
// subscribed to the group records every message as the broker delivers it
// and prints one JSON line per message: {"topic": …, "payload": "<hex>"}.
//
//   node capture.js MQTT_URL GROUP
//
// Exits non-zero, with the reason on stderr, if the session is not
// complete within 20 s.
'use strict';

const mqtt = require('mqtt');
const sparkplug = require('sparkplug-client');

const [url, group] = process.argv.slice(2);
if (!url || !group) {
  console.error('usage: node capture.js MQTT_URL GROUP');
  process.exit(2);
}

const T0 = 1733565600000;
const captured = [];

const timer = setTimeout(() => {
  console.error(`timed out after 20 s with ${captured.length} messages: ${captured.map((m) => m.topic).join(', ')}`);
  process.exit(1);
}, 20000);

const recorder = mqtt.connect(url, { clientId: `stoker-capture-${process.pid}`, clean: true });
recorder.on('error', (error) => {
  console.error(`recorder: ${error.message}`);
  process.exit(1);
});
recorder.on('message', (topic, payload) => {
  captured.push({ topic, payload: payload.toString('hex') });
  if (topic.includes('/NDEATH/')) {
    clearTimeout(timer);
    for (const message of captured) {
      process.stdout.write(`${JSON.stringify(message)}\n`);
    }
    recorder.end(false, () => process.exit(0));
  }
});
recorder.subscribe(`spBv1.0/${group}/#`, { qos: 0 }, (error) => {
  if (error) {
    console.error(`recorder: subscribe failed: ${error.message}`);
    process.exit(1);
  }
  startEdgeNode();
});

function startEdgeNode() {
  const client = sparkplug.newClient({
    serverUrl: url,
    username: 'tahu-edge',
    password: 'unused',
    groupId: group,
    edgeNode: 'Gateway 1',
    clientId: `stoker-tahu-${process.pid}`,
    publishDeath: true,
    version: 'spBv1.0',
  });
  client.on('error', (error) => {
    console.error(`sparkplug-client: ${error.message}`);
    process.exit(1);
  });
  client.on('birth', () => {
    client.publishNodeBirth({
      timestamp: T0,
      metrics: [
        { name: 'Node Control/Rebirth', type: 'Boolean', value: false, timestamp: T0 },
        { name: 'Properties/Hardware Make', type: 'String', value: 'Tahu', timestamp: T0 },
        { name: 'Flue Temp', alias: 1, type: 'Double', value: 180.5, timestamp: T0 },
        { name: 'Burner On', alias: 2, type: 'Boolean', value: true, timestamp: T0 },
        { name: 'Sequencer', alias: 3, type: 'String', value: 'purge', timestamp: T0 },
        { name: 'Draft Offset', alias: 4, type: 'Int8', value: -3, timestamp: T0 },
        { name: 'Starts', alias: 5, type: 'UInt32', value: 4000000000, timestamp: T0 },
      ],
    });
    client.publishDeviceBirth('Boiler 1', {
      timestamp: T0,
      metrics: [
        { name: 'Steam Pressure', alias: 10, type: 'Float', value: 10.5, timestamp: T0 },
        { name: 'Flame', alias: 11, type: 'Boolean', value: true, timestamp: T0 },
      ],
    });
    client.publishNodeData({
      timestamp: T0 + 1000,
      metrics: [
        { alias: 1, type: 'Double', value: 181.25, timestamp: T0 + 1000 },
        { alias: 4, type: 'Int8', value: -5, timestamp: T0 + 1000 },
        { alias: 1, type: 'Double', value: 170.0, timestamp: T0 - 60000, isHistorical: true },
        { alias: 3, type: 'String', value: 'firing' },
      ],
    });
    client.publishDeviceData('Boiler 1', {
      timestamp: T0 + 2000,
      metrics: [
        { alias: 10, type: 'Float', value: 10.75, timestamp: T0 + 2000 },
        { alias: 11, type: 'Boolean', value: false, timestamp: T0 + 2000 },
      ],
    });
    client.publishDeviceDeath('Boiler 1', { timestamp: T0 + 3000 });
    // Publishes the NDEATH (publishDeath), then disconnects.
    setTimeout(() => client.stop(), 200);
  });
}
