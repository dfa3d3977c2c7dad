// fhir-intake on Azure: everything `azd up` creates, in one resource group.
// Subscription scope so the resource group itself is part of the deployment (azd convention).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names the resource group and tags every resource.')
param environmentName string

@minLength(1)
@description('Azure region for every resource (Flex Consumption must be offered there).')
param location string

@description('Object id of whoever deploys (azd sets it); gets data access for the operator CLI. Empty: no access.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
@description('What principalId is: a user signed in to azd, or a pipeline identity.')
param principalType string = 'User'

@description('Resource group name; empty: rg-<environmentName>.')
param resourceGroupName string = ''

@description('VNet integration for the app and private endpoints for storage and Key Vault.')
param enablePrivateNetworking bool = false

@description('Public IPv4 ranges (CIDR) allowed through the storage and Key Vault firewalls when networking is private, e.g. an operator workstation.')
param allowedIpRanges array = []

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
@description('Storage redundancy; zone-redundant by default because the account holds the record.')
param storageSku string = 'Standard_ZRS'

@minValue(1)
@maxValue(1000)
@description('Most instances Flex Consumption may run.')
param maximumInstanceCount int = 100

@allowed([
  512
  2048
  4096
])
@description('Memory per instance, in MB.')
param instanceMemoryMB int = 2048

@minValue(1)
@description('Days raw and normalized payloads and batch drops are kept (HIPAA documentation: 6 years).')
param rawRetentionDays int = 2190

@minValue(1)
@description('Days bulk export files are kept before lifecycle management deletes them.')
param exportRetentionDays int = 7

@minValue(1)
@maxValue(146000)
@description('Days every audit blob is immutable (time-based retention on the audit container).')
param auditRetentionDays int = 2190

@minValue(1)
@maxValue(365)
@description('Days deleted blobs, containers and earlier blob versions can be recovered.')
param recoveryDays int = 30

@minValue(30)
@maxValue(730)
@description('Days Log Analytics keeps logs.')
param logRetentionDays int = 90

@description('E-mail address for alerts; empty: alerts fire without notifying anyone.')
param alertEmail string = ''

@description('Resource id of an Azure Health Data Services FHIR service the store forwards to (gets FHIR Data Contributor); may be in another resource group.')
param fhirServiceResourceId string = ''

// App settings: defaults equal the code's (tests/infra checks they do).
@allowed([
  'opt-out'
  'opt-in'
])
param consentPolicy string = 'opt-out'
param consentPurpose string = 'TREAT'
@description('Comma-separated v3 ActCode sensitivity labels that never pass on the default policy (42 CFR Part 2 and state law). Empty: none, which turns that protection off.')
param consentSensitiveLabels string = 'ETH,SUD,ETHUD,OPIOIDUD,PSY,PSYTHPN,HIV,STD,SDV,SEX,SICKLE'
param consentTimeZone string = 'UTC'
@description('Comma-separated identifier systems every partner\'s Patients link on across partners (a state MPI id); empty: links need partners registered as authorities of one system. A linking system is trusted from every partner.')
param linkSystems string = ''
@description('Seconds a source\'s clock may run ahead of ours; a later message time orders versions by its receipt instead.')
@minValue(0)
@maxValue(86400)
param sourceTimeSkewSeconds int = 300
@description('Seconds each instance keeps a partner\'s row and its API key rows: a key revoked or a partner changed elsewhere takes effect within this time (0: read on every request).')
@minValue(0)
@maxValue(3600)
param partnerCacheSeconds int = 30
@description('Public origins links are written with (comma-separated https://host[:port], e.g. a custom domain); the app\'s default host name serves too. Never the caller\'s Host header.')
param publicBaseUrl string = ''
param httpMaxBytes int = 10485760
param maxDecompressedBytes int = 67108864
param dropChunkRecords int = 1000
@description('Minutes an upload URL from POST /api/ingest/uploads may be used (it writes one blob in the caller\'s drop folder).')
@minValue(1)
@maxValue(1440)
param uploadSasMinutes int = 15
@description('Comma-separated partner ids whose ingest-drop folder alone proves a file theirs, with no issued upload (the rule before batch uploads); only where nobody but operators can write the container. Empty: none.')
param directDropPartners string = ''
@description('Bytes one record of a dropped file may be (a line, an HL7 message, a CSV row, a JSON document); normalize takes at most 64 MiB.')
@minValue(1024)
@maxValue(67108864)
param dropMaxRecordBytes int = 16777216
@description('Bytes a gzip drop may inflate to in all (drops are the bulk path; memory does not grow with it, time does).')
@minValue(1024)
param dropMaxDecompressedBytes int = 4294967296
@description('A gzip drop may inflate to at most this many times its own size (a bomb: about 1000).')
@minValue(2)
@maxValue(1032)
param dropMaxInflateRatio int = 100
@description('Seconds of work per bulk-export message; keep it well inside the function timeout.')
@minValue(1)
@maxValue(480)
param exportSliceSeconds int = 120
param dedupWindowHours int = 24
@description('NCRONTAB for the sweeper that finishes stalled HTTP submissions.')
param sweepSchedule string = '0 */5 * * * *'
param webhookRetrySchedule string = '5,300,1800,7200,18000,36000,36000'
param webhookTimeoutSeconds string = '10'
@description('Entra ID tenant whose tokens are accepted; empty: API keys only.')
param entraTenantId string = ''
@description('Audiences (app id URI or client id, comma-separated) a token must be for.')
param entraAudience string = ''
param entraAuthority string = 'https://login.microsoftonline.com'
param acceptApiKeys bool = true
@description('A FHIR server the record store also writes to; empty: none.')
param fhirServerUrl string = ''
@allowed([
  'managed-identity'
  'none'
])
param fhirServerAuth string = 'managed-identity'

@description('Principal ids of internal producers that submit through the intake-requests queue.')
param queueProducerPrincipalIds array = []

// The MLLP listener (intake mllp) on Container Apps with TCP ingress, when an image is
// given (docker build -f infra/mllp/Dockerfile; README, "HL7 v2 over MLLP").
param mllpImage string = ''
@description('The image\'s registry (the app identity needs AcrPull there); empty: public.')
param mllpRegistryServer string = ''
@description('One entry per port: {"port": 2575, "partner": "lab-a"} (mllp_listener/config.py).')
param mllpListeners array = [
  {
    port: 2575
    partner: 'mllp-sender'
  }
]
@description('Sender addresses (CIDR) the listener accepts; empty: any.')
param mllpAllowedIpRanges array = []
@description('A Key Vault secret with the listener\'s PEM certificate and key, at /config/tls.pem.')
param mllpTlsSecretName string = ''

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    workspaceName: 'log-${resourceToken}'
    appInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    retentionDays: logRetentionDays
  }
}

module network 'modules/network.bicep' = if (enablePrivateNetworking) {
  name: 'network'
  scope: rg
  params: {
    name: 'vnet-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    sku: storageSku
    privateNetworking: enablePrivateNetworking
    allowedIpRanges: allowedIpRanges
    rawRetentionDays: rawRetentionDays
    exportRetentionDays: exportRetentionDays
    auditRetentionDays: auditRetentionDays
    recoveryDays: recoveryDays
    workspaceId: monitoring.outputs.workspaceId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    privateNetworking: enablePrivateNetworking
    allowedIpRanges: allowedIpRanges
    workspaceId: monitoring.outputs.workspaceId
  }
}

module privateEndpoints 'modules/private-endpoints.bicep' = if (enablePrivateNetworking) {
  name: 'private-endpoints'
  scope: rg
  params: {
    location: location
    tags: tags
    vnetName: 'vnet-${resourceToken}'
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
  }
  dependsOn: [
    network
  ]
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    appPrincipalId: identity.outputs.principalId
    operatorPrincipalId: principalId
    operatorPrincipalType: principalType
    producerPrincipalIds: queueProducerPrincipalIds
  }
}

// ARM evaluates a skipped module's scope too, so an empty id must still split into parts.
var fhirServiceIdParts = split(empty(fhirServiceResourceId) ? '/subscriptions/${subscription().subscriptionId}/resourceGroups/${rg.name}' : fhirServiceResourceId, '/')

module fhirAccess 'modules/fhir-access.bicep' = if (!empty(fhirServiceResourceId)) {
  name: 'fhir-access'
  // The FHIR service may live in another resource group or subscription.
  scope: resourceGroup(fhirServiceIdParts[2], fhirServiceIdParts[4])
  params: {
    fhirServiceResourceId: fhirServiceResourceId
    appPrincipalId: identity.outputs.principalId
  }
}

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  scope: rg
  params: {
    name: 'evgt-${resourceToken}'
    location: location
    tags: tags
    storageAccountName: storage.outputs.name
    workspaceId: monitoring.outputs.workspaceId
  }
}

module app 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    name: 'func-${resourceToken}'
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    keyVaultUri: keyVault.outputs.uri
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    workspaceId: monitoring.outputs.workspaceId
    subnetId: enablePrivateNetworking ? network.outputs.appSubnetId : ''
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    intakeSettings: {
      INTAKE_ENVIRONMENT: 'production'
      INTAKE_HTTP_MAX_BYTES: string(httpMaxBytes)
      INTAKE_MAX_DECOMPRESSED_BYTES: string(maxDecompressedBytes)
      INTAKE_DEDUP_WINDOW_HOURS: string(dedupWindowHours)
      INTAKE_SWEEP_SCHEDULE: sweepSchedule
      INTAKE_DROP_CHUNK_RECORDS: string(dropChunkRecords)
      INTAKE_UPLOAD_SAS_MINUTES: string(uploadSasMinutes)
      INTAKE_DIRECT_DROP_PARTNERS: directDropPartners
      INTAKE_DROP_MAX_RECORD_BYTES: string(dropMaxRecordBytes)
      INTAKE_DROP_MAX_DECOMPRESSED_BYTES: string(dropMaxDecompressedBytes)
      INTAKE_DROP_MAX_INFLATE_RATIO: string(dropMaxInflateRatio)
      INTAKE_EXPORT_SLICE_SECONDS: string(exportSliceSeconds)
      INTAKE_CONSENT_POLICY: consentPolicy
      INTAKE_CONSENT_PURPOSE: consentPurpose
      INTAKE_CONSENT_SENSITIVE_LABELS: consentSensitiveLabels
      INTAKE_CONSENT_TIME_ZONE: consentTimeZone
      INTAKE_LINK_SYSTEMS: linkSystems
      INTAKE_SOURCE_TIME_SKEW_SECONDS: string(sourceTimeSkewSeconds)
      INTAKE_PARTNER_CACHE_SECONDS: string(partnerCacheSeconds)
      INTAKE_PUBLIC_BASE_URL: publicBaseUrl
      FHIR_SERVER_URL: fhirServerUrl
      FHIR_SERVER_AUTH: fhirServerAuth
      INTAKE_WEBHOOK_RETRY_SCHEDULE: webhookRetrySchedule
      INTAKE_WEBHOOK_TIMEOUT_SECONDS: webhookTimeoutSeconds
      INTAKE_AUTH_ENTRA_TENANT_ID: entraTenantId
      INTAKE_AUTH_ENTRA_AUDIENCE: entraAudience
      INTAKE_AUTH_ENTRA_AUTHORITY: entraAuthority
      INTAKE_AUTH_API_KEYS: string(acceptApiKeys)
    }
  }
  dependsOn: [
    roles
    privateEndpoints
  ]
}

module mllp 'modules/mllp.bicep' = if (!empty(mllpImage)) {
  name: 'mllp'
  scope: rg
  params: {
    name: 'ca-mllp-${resourceToken}'
    location: location
    tags: tags
    image: mllpImage
    registryServer: mllpRegistryServer
    listeners: mllpListeners
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    keyVaultUri: keyVault.outputs.uri
    workspaceId: monitoring.outputs.workspaceId
    httpMaxBytes: httpMaxBytes
    subnetId: enablePrivateNetworking ? network.outputs.mllpSubnetId : ''
    allowedIpRanges: mllpAllowedIpRanges
    tlsSecretName: mllpTlsSecretName
  }
  dependsOn: [
    roles
    privateEndpoints
  ]
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    namePrefix: resourceToken
    location: location
    tags: tags
    alertEmail: alertEmail
    workspaceId: monitoring.outputs.workspaceId
    eventGridTopicId: eventGrid.outputs.topicId
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    environmentName: environmentName
    workspaceId: monitoring.outputs.workspaceId
    storageAccountId: storage.outputs.id
    eventGridTopicId: eventGrid.outputs.topicId
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.name
output API_BASE_URL string = 'https://${app.outputs.defaultHostName}/api'
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output AZURE_STORAGE_QUEUE_ENDPOINT string = storage.outputs.queueEndpoint
output AZURE_STORAGE_TABLE_ENDPOINT string = storage.outputs.tableEndpoint
output AZURE_KEY_VAULT_URL string = keyVault.outputs.uri
output AZURE_APP_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output INTAKE_MLLP_ADDRESS string = empty(mllpImage) ? '' : mllp!.outputs.address
