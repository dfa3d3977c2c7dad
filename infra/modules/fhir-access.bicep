// FHIR Data Contributor for the app on an existing Azure Health Data Services FHIR service,
// deployed in that service's own resource group (main.bicep scopes this module there).
param fhirServiceResourceId string
param appPrincipalId string

var fhirDataContributor = '5a1fc7df-4bf1-4951-a576-89034ee01acd'
var idParts = split(fhirServiceResourceId, '/')

// .../providers/Microsoft.HealthcareApis/workspaces/{workspace}/fhirservices/{service}
resource workspace 'Microsoft.HealthcareApis/workspaces@2024-03-31' existing = {
  name: idParts[8]
}

resource fhirService 'Microsoft.HealthcareApis/workspaces/fhirservices@2024-03-31' existing = {
  parent: workspace
  name: idParts[10]
}

resource fhirWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(fhirService.id, appPrincipalId, fhirDataContributor)
  scope: fhirService
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', fhirDataContributor)
  }
}
